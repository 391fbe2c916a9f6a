"""Release v0 baked into the test-host image: the smallest app the action can verify."""
import json
import os

from flask import Flask, jsonify

HERE = os.path.dirname(os.path.abspath(__file__))


def read_release_id():
    try:
        with open(os.path.join(HERE, ".zdd-release.json"), encoding="utf-8") as fh:
            return str(json.load(fh).get("id", "unknown"))
    except (OSError, ValueError):
        return "unknown"


RELEASE = read_release_id()
app = Flask(__name__)


@app.after_request
def tag_release(response):
    response.headers["X-Release"] = RELEASE
    return response


@app.route("/")
def index():
    return f"release={RELEASE}\n", 200, {"Content-Type": "text/plain"}


@app.route("/health")
def health():
    return jsonify(status="ok", release=RELEASE, pid=os.getpid(), file=os.path.abspath(__file__), cwd=os.getcwd())
