"""Example Flask app deployed by flask-zero-downtime-deploy.

`/` and `/health` answer with the release id, read at import time from
`.zdd-release.json`, which the action writes into every release it uploads.
The health body also shows the pid, the module file and the working
directory, which make stale-code bugs obvious.
"""
import json
import os

from flask import Flask, jsonify
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

HERE = os.path.dirname(os.path.abspath(__file__))


def read_release_id():
    try:
        with open(os.path.join(HERE, ".zdd-release.json"), encoding="utf-8") as fh:
            return str(json.load(fh).get("id", "unknown"))
    except (OSError, ValueError):
        return "unknown"


RELEASE = read_release_id()

app = Flask(__name__, instance_path=os.path.join(HERE, "instance"))
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get(
    "DATABASE_URL", "sqlite:///" + os.path.join(app.instance_path, "app.db")
)
db = SQLAlchemy(app)
migrate = Migrate(app, db)


class Visit(db.Model):
    __tablename__ = "visits"
    id = db.Column(db.Integer, primary_key=True)
    path = db.Column(db.String(200), nullable=False)


@app.after_request
def tag_release(response):
    response.headers["X-Release"] = RELEASE
    return response


@app.route("/")
def index():
    return f"release={RELEASE}\n", 200, {"Content-Type": "text/plain"}


@app.route("/health")
def health():
    return jsonify(
        status="ok",
        release=RELEASE,
        pid=os.getpid(),
        file=os.path.abspath(__file__),
        cwd=os.getcwd(),
    )
