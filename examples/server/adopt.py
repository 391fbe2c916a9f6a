#!/usr/bin/env python3
"""adopt: converts a server that already runs a Flask app under Gunicorn, systemd and Nginx
to the layout flask-zero-downtime-deploy deploys, without dropping a request.

Run it through adopt.sh, as root. It reads what is there (the unit and its drop-ins,
Gunicorn's command line and config, the venv, the bind, the Nginx site that proxies to it,
the user and group, untracked files in the app directory), prints the plan, and with --apply:

- creates release-path with a first release copied from the running code (releases/adopted-*,
  marked as predating the action), a copy of the venv, and shared/ links to the files the app
  keeps beside its code (.env, instance/, ...), which stay where they are;
- writes a systemd drop-in (the unit file stays as it was): --chdir <release-path>/current, a
  socket in a runtime directory, ExecReload (HUP), at least two workers;
- moves traffic without dropping a request: the converted app first runs beside the old one,
  as a stand-in unit on its own socket, and is proven there before Nginx is reloaded onto it;
  only then is the old process stopped and the unit started converted, and Nginx reloaded
  onto the unit's new socket (each reload is graceful), and the stand-in stopped;
- installs the least-privilege sudoers file for the deploy user (creating the user, with the
  public key given, when it does not exist);
- runs the action's own `mode: check` against the server when Node.js 20+ and the action's
  bundle are at hand, and prints the workflow snippet for this server.

It keeps a backup in /var/lib/zdd-adopt/<unit>/, so --undo puts back the original files, with
the same zero-downtime handover. Whatever it cannot convert safely, it refuses with the reason,
before changing anything.
"""
from __future__ import annotations

import argparse
import ast
import datetime
import difflib
import hashlib
import http.client
import json
import os
import pwd
import grp
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
STATE_ROOT = "/var/lib/zdd-adopt"
DROPIN = "zdd-adopt.conf"
MARKER = ".zdd-release.json"
STAND_IN_PREFIX = "zdd-adopt-"
SECURE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
SHARED_RE = re.compile(r"^[A-Za-z0-9._@+-][A-Za-z0-9._@+/-]*$")
HEALTH_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")
PROOF_SECONDS = 60


class Refused(Exception):
    """The server cannot be converted safely as it is: the reason and what to do. Nothing changed."""

    def __init__(self, reason: str, fix: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


class Failed(Exception):
    """A step of --apply or --undo failed."""


def say(text: str = "") -> None:
    print(text, flush=True)


def note(text: str) -> None:
    print(f"adopt: {text}", flush=True)


STARTED = time.monotonic()


def step(text: str) -> None:
    """A step of --apply or --undo, with the seconds since adopt started."""
    print(f"adopt: [{time.monotonic() - STARTED:5.1f} s] {text}", flush=True)


def run(argv: list[str], check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Runs argv (never through a shell); a failure raises Failed naming the command."""
    env = kw.pop("env", None) or dict(os.environ, LC_ALL="C", PATH=SECURE_PATH)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, **kw)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise Failed(f"{shlex.join(argv)}: {error}") from error
    if check and done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-1500:]
        raise Failed(f"{shlex.join(argv)} failed (exit {done.returncode}): {tail}")
    return done


def now_id() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def iso_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def inside(path: str, directory: str) -> bool:
    """Whether path is directory itself or below it (both absolute, normalised)."""
    path, directory = os.path.normpath(path), os.path.normpath(directory)
    return path == directory or path.startswith(directory.rstrip("/") + "/")


# ---------------------------------------------------------------------------------------------
# systemd


def parse_unit_text(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment of a unit file, in order; continued lines joined."""
    entries: list[tuple[str, str, str]] = []
    section, pending = "", ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending:
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if "=" in line:
            key, value = line.split("=", 1)
            entries.append((section, key.strip(), value.strip()))
    return entries


def service_list(entries: list[tuple[str, str, str]], key: str) -> list[str]:
    """A list-valued [Service] setting as systemd merges it: an empty assignment resets it."""
    values: list[str] = []
    for section, name, value in entries:
        if section == "Service" and name == key:
            values = [] if value == "" else values + [value]
    return values


def split_exec(value: str) -> tuple[str, list[str]]:
    """ExecStart's prefix characters and its words, refusing what systemd would rewrite."""
    prefix = re.match(r"^[-@:+!]*", value).group(0)
    rest = value[len(prefix):]
    if "@" in prefix:
        raise Refused(f"ExecStart uses the @ prefix ({value}): argv[0] is not the program it runs")
    if re.search(r"\$|%(?!%)", rest.replace("%%", "")):
        raise Refused(
            f"ExecStart uses systemd variables or specifiers ({value}): adopt cannot read it for certain",
            "write the command out literally in the unit, run systemctl daemon-reload and restart, then run adopt again",
        )
    try:
        return prefix, shlex.split(rest.replace("%%", "%"))
    except ValueError as error:
        raise Refused(f"ExecStart cannot be split into words ({error}): {value}") from error


def env_assignments(values: list[str]) -> list[tuple[str, str]]:
    """NAME=value pairs of Environment= lines (quoted as systemd quotes them)."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        for word in shlex.split(value):
            if "=" in word:
                name, val = word.split("=", 1)
                pairs.append((name, val))
    return pairs


def read_env_file(path: str) -> dict[str, str]:
    """The NAME=value lines of an EnvironmentFile (quotes removed); {} when it cannot be read."""
    values: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line and not line.startswith(("#", ";")) and "=" in line:
                    name, value = line.split("=", 1)
                    value = value.strip()
                    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                        value = value[1:-1]
                    values[name.strip()] = value
    except OSError:
        pass
    return values


@dataclass
class Unit:
    name: str
    props: dict[str, str]
    fragment: str
    dropins: list[str]
    #: the unit's files in load order (fragment, then drop-ins), without adopt's own drop-in
    texts: list[tuple[str, str]]
    entries: list[tuple[str, str, str]]

    @property
    def service(self) -> str:
        return f"{self.name}.service"

    @property
    def dropin_path(self) -> str:
        return f"/etc/systemd/system/{self.service}.d/{DROPIN}"

    def env(self) -> dict[str, str]:
        """The unit's environment as its processes see it: Environment=, then EnvironmentFile=."""
        values = dict(env_assignments(service_list(self.entries, "Environment")))
        for spec in service_list(self.entries, "EnvironmentFile"):
            values.update(read_env_file(spec.lstrip("-")))
        return values


UNIT_PROPS = [
    "LoadState", "ActiveState", "SubState", "MainPID", "FragmentPath", "DropInPaths", "User",
    "Group", "WorkingDirectory", "RuntimeDirectory", "Type",
]


def show(service: str, props: list[str]) -> dict[str, str]:
    out = run(["systemctl", "show", service, "--property=" + ",".join(props)]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def read_unit(name: str) -> Unit:
    props = show(f"{name}.service", UNIT_PROPS)
    if props.get("LoadState") != "loaded":
        raise Refused(
            f"unit {name}.service is not loaded (LoadState={props.get('LoadState', '?')})",
            "give --service the unit that runs Gunicorn (systemctl list-units --type=service)",
        )
    fragment = props.get("FragmentPath", "")
    dropins = [p for p in props.get("DropInPaths", "").split() if p]
    texts: list[tuple[str, str]] = []
    for path in [fragment, *dropins]:
        if path and os.path.basename(path) != DROPIN:
            with open(path, encoding="utf-8") as fh:
                texts.append((path, fh.read()))
    entries = [e for _, text in texts for e in parse_unit_text(text)]
    return Unit(name, props, fragment, dropins, texts, entries)


# ---------------------------------------------------------------------------------------------
# Gunicorn

VALUE_OPTIONS = set(
    """config bind workers worker-class threads chdir backlog worker-connections max-requests
    max-requests-jitter timeout graceful-timeout keep-alive limit-request-line
    limit-request-fields limit-request-field_size reload-engine reload-extra-file user group umask
    worker-tmp-dir forwarded-allow-ips access-logfile access-logformat error-logfile log-file
    log-level logger-class log-config log-config-json log-syslog-to log-syslog-prefix
    log-syslog-facility statsd-host statsd-prefix dogstatsd-tags name pythonpath paste paster
    paste-global proxy-allow-from keyfile certfile ssl-version cert-reqs ca-certs ciphers env pid
    header-map forwarder-headers""".split()
)
SWITCHES = set(
    """preload reload spew check-config print-config daemon capture-output
    enable-stdio-inheritance log-syslog disable-redirect-access-to-syslog initgroups proxy-protocol
    do-handshake-on-connect suppress-ragged-eofs no-sendfile reuse-port strip-header-spaces
    permit-unconventional-http-method permit-unconventional-http-version casefold-http-method
    permit-obsolete-folding version help""".split()
)
SHORT = {
    "c": "config", "b": "bind", "w": "workers", "k": "worker-class", "t": "timeout", "u": "user",
    "g": "group", "m": "umask", "n": "name", "e": "env", "p": "pid", "D": "daemon",
    "R": "enable-stdio-inheritance", "v": "version", "h": "help",
}
#: options naming files Gunicorn reads (moved into the release when they are in the app dir)
READ_PATHS = {"config", "pythonpath", "log-config", "log-config-json", "keyfile", "certfile", "ca-certs"}
#: options naming files Gunicorn writes (kept where they are, as absolute paths)
WRITE_PATHS = {"access-logfile", "error-logfile", "log-file", "pid", "worker-tmp-dir"}
#: what adopt sets itself on the converted command line
REPLACED = {"bind", "chdir", "workers"}


@dataclass
class Option:
    name: str
    value: str | None
    tokens: list[str]


def long_name(text: str) -> str:
    """A long option's full name; argparse also accepts a unique prefix."""
    known = VALUE_OPTIONS | SWITCHES
    if text in known:
        return text
    matches = [name for name in known if name.startswith(text)]
    if len(matches) != 1:
        raise Refused(f"unknown Gunicorn option --{text}: adopt cannot tell whether it takes a value")
    return matches[0]


def parse_gunicorn_args(args: list[str]) -> tuple[list[Option], list[str]]:
    """Gunicorn's options (as argparse reads them) and its positional arguments (the app)."""
    options: list[Option] = []
    positional: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            positional += args[i + 1:]
            break
        if token.startswith("--"):
            text, eq, value = token[2:].partition("=")
            name = long_name(text)
            if name in VALUE_OPTIONS and not eq:
                if i + 1 >= len(args):
                    raise Refused(f"Gunicorn option {token} has no value")
                options.append(Option(name, args[i + 1], [token, args[i + 1]]))
                i += 1
            elif name in VALUE_OPTIONS:
                options.append(Option(name, value, [token]))
            elif eq:
                raise Refused(f"Gunicorn option --{name} takes no value: {token}")
            else:
                options.append(Option(name, None, [token]))
        elif token.startswith("-") and len(token) > 1:
            i += short_option(args, i, options)
        else:
            positional.append(token)
        i += 1
    return options, positional


def short_option(args: list[str], i: int, options: list[Option]) -> int:
    """Reads -x, -xVALUE, -x VALUE or clustered switches at args[i]; returns how many extra words it took."""
    token = args[i]
    name = SHORT.get(token[1])
    if name is None:
        raise Refused(f"unknown Gunicorn option {token}")
    if name in VALUE_OPTIONS:
        if len(token) > 2:
            options.append(Option(name, token[2:], [token]))
            return 0
        if i + 1 >= len(args):
            raise Refused(f"Gunicorn option {token} has no value")
        options.append(Option(name, args[i + 1], [token, args[i + 1]]))
        return 1
    for char in token[1:]:
        switch = SHORT.get(char)
        if switch is None or switch in VALUE_OPTIONS:
            raise Refused(f"cannot read the Gunicorn options {token}")
        options.append(Option(switch, None, [f"-{char}"]))
    return 0


def last(options: list[Option], name: str) -> str | None:
    values = [o.value for o in options if o.name == name]
    return values[-1] if values else None


UNKNOWN = object()


def read_gunicorn_config(path: str) -> dict[str, object]:
    """Top-level literal settings of a Gunicorn config file; UNKNOWN for one computed at run time."""
    try:
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
    except (OSError, SyntaxError) as error:
        raise Refused(f"cannot read Gunicorn's config file {path}: {error}") from error
    settings: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    try:
                        settings[target.id] = ast.literal_eval(node.value)
                    except ValueError:
                        settings[target.id] = UNKNOWN
    return settings


@dataclass
class Gunicorn:
    prefix: str
    launcher: list[str]
    options: list[Option]
    app: str | None
    #: the config file Gunicorn reads (absolute), given or found in its start directory
    config: str | None
    config_given: bool
    settings: dict[str, object]
    env_options: list[Option]


def split_launcher(argv: list[str]) -> tuple[list[str], list[str]]:
    """[gunicorn] or [python, -m, gunicorn], and the arguments after it."""
    program = os.path.basename(argv[0]) if argv else ""
    if re.match(r"^gunicorn3?$", program):
        return argv[:1], argv[1:]
    if re.match(r"^python(3(\.\d+)?)?$", program) and argv[1:3] == ["-m", "gunicorn"]:
        return argv[:3], argv[3:]
    raise Refused(
        f"ExecStart does not run Gunicorn directly: {shlex.join(argv)}",
        "adopt converts `.../bin/gunicorn ARGS` and `.../bin/python -m gunicorn ARGS`; for a wrapper "
        "(sh -c, a script, poetry run, ...) convert by hand: docs/adopt.md, by hand",
    )


def read_gunicorn(unit: Unit) -> Gunicorn:
    starts = service_list(unit.entries, "ExecStart")
    if len(starts) != 1:
        raise Refused(f"{unit.service} has {len(starts)} ExecStart lines; adopt converts a unit with one")
    prefix, argv = split_exec(starts[0])
    launcher, args = split_launcher(argv)
    options, positional = parse_gunicorn_args(args)
    if len(positional) > 1:
        raise Refused(f"Gunicorn is given several applications: {' '.join(positional)}")
    env = unit.env()
    env_options, _ = parse_gunicorn_args(shlex.split(env.get("GUNICORN_CMD_ARGS", "")))
    cwd = unit.props.get("WorkingDirectory") or "/"
    config = last(options, "config") or last(env_options, "config")
    given = config is not None
    if config and config.startswith("python:"):
        raise Refused(f"Gunicorn reads its config from a module ({config}); adopt reads config files only")
    if config:
        config = os.path.normpath(os.path.join(cwd, config))
    elif os.path.isfile(os.path.join(cwd, "gunicorn.conf.py")):
        config = os.path.join(cwd, "gunicorn.conf.py")
    settings = read_gunicorn_config(config) if config else {}
    return Gunicorn(prefix, launcher, options, positional[0] if positional else None, config, given, settings, env_options)


def gunicorn_refusals(g: Gunicorn) -> None:
    """What adopt refuses in Gunicorn's settings, wherever they are set."""
    where = [("the command line", g.options), ("GUNICORN_CMD_ARGS", g.env_options)]
    for label, options in where:
        for name, why in [
            ("preload", "a reload (HUP) would keep serving the code the master loaded"),
            ("daemon", "systemd could not follow the master"),
            ("reload", "it restarts workers on file changes (a development setting)"),
            ("paste", "a PasteDeploy application is not a module the release provides"),
        ]:
            if any(o.name == name for o in options):
                raise Refused(
                    f"Gunicorn runs with --{name} ({label}): {why}",
                    f"remove --{name} from {label}, restart the unit once, then run adopt again",
                )
    for name, why in [("preload_app", "a reload (HUP) would keep serving the code the master loaded"), ("daemon", "systemd could not follow the master")]:
        value = g.settings.get(name)
        if value is UNKNOWN or value:
            raise Refused(
                f"Gunicorn's config file {g.config} sets {name}{'' if value is UNKNOWN else ' = True'}: {why}"
                + (" (or adopt cannot tell: it is computed)" if value is UNKNOWN else ""),
                f"set {name} = False in {g.config}, restart the unit once, then run adopt again",
            )


# ---------------------------------------------------------------------------------------------
# processes and sockets


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def cwd_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


@dataclass
class Listen:
    kind: str  # unix or tcp
    address: str  # the socket's path (absolute), or host:port
    queue: int = 0
    #: the path as the kernel lists it, when it was bound relative to the master's directory
    listed: str = ""

    @property
    def host(self) -> str:
        return self.address.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    @property
    def bind(self) -> str:
        return f"unix:{self.address}" if self.kind == "unix" else self.address

    def connect_host(self) -> str:
        return {"0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "::": "::1"}.get(self.host, self.host)


def parse_ss(text: str, kind: str) -> list[tuple[Listen, list[int]]]:
    """Listening sockets from `ss -xlnpH` or `ss -tlnpH`, with the pids holding each."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if "LISTEN" not in words:
            continue
        at = words.index("LISTEN")
        if len(words) < at + 4:
            continue
        pids = [int(p) for p in re.findall(r"pid=(\d+)", line)]
        found.append((Listen(kind, words[at + 3], int(words[at + 1])), pids))
    return found


def listening(pids: set[int], cwd: str) -> list[Listen]:
    """The sockets the given processes listen on (unix and TCP); a relative socket path is
    relative to cwd, the directory the master bound it in."""
    found: list[Listen] = []
    for kind, flag in [("unix", "-xlnpH"), ("tcp", "-tlnpH")]:
        out = run(["ss", flag], check=False).stdout
        for sock, holders in parse_ss(out, kind):
            if pids & set(holders):
                if kind == "unix" and not sock.address.startswith("/"):
                    sock = Listen("unix", os.path.normpath(os.path.join(cwd, sock.address)), sock.queue, sock.address)
                found.append(sock)
    return found


def accept_queue(listen: Listen) -> int | None:
    """Connections waiting in the listen queue of a socket, or None when it does not listen."""
    kind = "-xlnH" if listen.kind == "unix" else "-tlnH"
    out = run(["ss", kind], check=False).stdout
    for sock, _ in parse_ss(out, listen.kind):
        if sock.address in (listen.address, listen.listed):
            return sock.queue
    return None


def http_get(target: Listen, path: str, timeout: float = 5) -> int:
    """The HTTP status of GET path on a Gunicorn bind (0 when nothing answers)."""
    if target.kind == "unix":
        conn = http.client.HTTPConnection("localhost", timeout=timeout)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(target.address)
        except OSError:
            sock.close()
            return 0
        conn.sock = sock
    else:
        conn = http.client.HTTPConnection(target.connect_host(), target.port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": "localhost", "User-Agent": "zdd-adopt"})
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# Nginx


def nginx_tokens(text: str) -> list[tuple[str, int, int]]:
    """The words of an Nginx configuration (quotes kept) and ; { }, with their spans; no comments."""
    tokens: list[tuple[str, int, int]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c in ";{}":
            tokens.append((c, i, i + 1))
            i += 1
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            tokens.append((text[i:j + 1], i, j + 1))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in ";{}":
                j += 1
            tokens.append((text[i:j], i, j))
            i = j
    return tokens


def nginx_statements(text: str):
    """(block path, words) for every statement, e.g. (['http', 'upstream app'], [server, ...])."""
    stack: list[str] = []
    words: list[tuple[str, int, int]] = []
    for token in nginx_tokens(text):
        if token[0] == ";":
            if words:
                yield list(stack), words
            words = []
        elif token[0] == "{":
            yield list(stack), words
            stack.append(" ".join(w[0] for w in words))
            words = []
        elif token[0] == "}":
            if stack:
                stack.pop()
            words = []
        else:
            words.append(token)


def unquote(word: str) -> str:
    return word[1:-1] if len(word) >= 2 and word[0] == word[-1] and word[0] in "\"'" else word


LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def address_matches(address: str, listens: list[Listen]) -> bool:
    """Whether an Nginx address (`unix:/path`, `host:port`) reaches one of Gunicorn's sockets."""
    if address.startswith("unix:"):
        path = os.path.normpath(re.sub(r"^/var/run/", "/run/", address[5:]))
        return any(s.kind == "unix" and os.path.normpath(re.sub(r"^/var/run/", "/run/", s.address)) == path for s in listens)
    m = re.match(r"^(\[[^\]]+\]|[^:/]+)(?::(\d+))?$", address)
    if not m:
        return False
    host, port = m.group(1), int(m.group(2) or 80)
    for s in listens:
        if s.kind == "tcp" and s.port == port:
            if host.strip("[]") == s.host or (host in LOOPBACK and (s.host in LOOPBACK or s.host in ("0.0.0.0", "*", "::"))):
                return True
    return False


def proxy_target(url: str) -> tuple[str, str] | None:
    """(address, rest) of a proxy_pass URL: ('unix:/run/a.sock', ':/uri') or ('127.0.0.1:8000', '/uri')."""
    m = re.match(r"^http://unix:([^:]+)(.*)$", url)
    if m:
        return f"unix:{m.group(1)}", m.group(2)
    m = re.match(r"^http://([^/]+)(.*)$", url)
    return (m.group(1), m.group(2)) if m else None


@dataclass
class Edit:
    """One place in an Nginx file that reaches Gunicorn: the span of its address word."""
    start: int
    end: int
    kind: str  # proxy_pass or upstream
    rest: str  # what follows the address in a proxy_pass URL
    quote: str


def find_edits(text: str, listens: list[Listen]) -> tuple[list[Edit], list[str]]:
    """The places in one Nginx file that proxy to Gunicorn, and upstream names that reach it."""
    statements = list(nginx_statements(text))
    upstreams: dict[str, list[tuple[bool, tuple[str, int, int]]]] = {}
    for blocks, words in statements:
        if blocks and blocks[-1].startswith("upstream ") and words and words[0][0] == "server" and len(words) > 1:
            name = blocks[-1].split(None, 1)[1]
            upstreams.setdefault(name, []).append((address_matches(unquote(words[1][0]), listens), words[1]))
    edits: list[Edit] = []
    names: list[str] = []
    for name, servers in upstreams.items():
        if any(hit for hit, _ in servers):
            if not all(hit for hit, _ in servers):
                raise Refused(f"Nginx upstream {name} balances over Gunicorn and other servers; adopt converts an upstream that reaches only Gunicorn")
            names.append(name)
            for _, (word, start, end) in servers:
                edits.append(Edit(start, end, "upstream", "", word[0] if word[0] in "\"'" else ""))
    for _, words in statements:
        if words and words[0][0] == "proxy_pass" and len(words) == 2:
            word, start, end = words[1]
            target = proxy_target(unquote(word))
            if target and address_matches(target[0], listens):
                edits.append(Edit(start, end, "proxy_pass", target[1], word[0] if word[0] in "\"'" else ""))
    return edits, names


def retarget(text: str, edits: list[Edit], socket_path: str) -> str:
    """text with every edit's address pointing at the unix socket socket_path."""
    out, at = [], 0
    for e in sorted(edits, key=lambda e: e.start):
        new = f"http://unix:{socket_path}{e.rest}" if e.kind == "proxy_pass" else f"unix:{socket_path}"
        out += [text[at:e.start], f"{e.quote}{new}{e.quote}"]
        at = e.end
    return "".join(out + [text[at:]])


@dataclass
class Nginx:
    files: dict[str, str]  # real path -> text now
    edits: dict[str, list[Edit]]
    user: str
    pidfile: str


def read_nginx(listens: list[Listen]) -> Nginx:
    if not shutil.which("nginx", path=SECURE_PATH):
        raise Refused("Nginx is not installed; adopt converts a server where Nginx proxies to Gunicorn")
    dump = run(["nginx", "-T"], check=False)
    if dump.returncode != 0:
        raise Refused(f"nginx -T fails: {dump.stderr.strip()[-600:]}", "fix the Nginx configuration (nginx -t) first")
    names = re.findall(r"^# configuration file (.+):$", dump.stdout, re.M)
    files, edits = {}, {}
    user, pidfile = "www-data", "/run/nginx.pid"
    for name in dict.fromkeys(names):
        path = os.path.realpath(name)
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        for blocks, words in nginx_statements(text):
            if not blocks and words and words[0][0] == "user" and len(words) > 1:
                user = unquote(words[1][0])
            if not blocks and words and words[0][0] == "pid" and len(words) > 1:
                pidfile = unquote(words[1][0])
        found, _ = find_edits(text, listens)
        if found:
            files[path], edits[path] = text, found
    if not files:
        binds = ", ".join(s.bind for s in listens)
        raise Refused(
            f"no Nginx configuration proxies to Gunicorn's bind ({binds})",
            "adopt converts the Nginx site that proxy_passes to Gunicorn; check nginx -T",
        )
    return Nginx(files, edits, user, pidfile)


def nginx_master(nginx: Nginx) -> int:
    try:
        with open(nginx.pidfile, encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError) as error:
        raise Refused(f"Nginx is not running ({nginx.pidfile}: {error})", "start Nginx first") from error


def nginx_workers(master: int) -> set[int]:
    workers = set()
    for pid in children(master):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"worker process" in fh.read():
                    workers.add(pid)
        except OSError:
            pass
    return workers


# ---------------------------------------------------------------------------------------------
# the app directory and its venv

#: what adopt links from shared/ by default: Flask's conventions for secrets and data
SHARED_NAMES = {".env", "instance"}
SHARED_PATTERN = re.compile(r"\.(db|sqlite|sqlite3)$")
CACHES = {"__pycache__", ".pytest_cache", ".mypy_cache", ".tox", ".ruff_cache"}


@dataclass
class Entry:
    name: str
    kind: str  # code (copied), shared (linked from shared/), skip (left out)
    why: str


def find_venv(launcher: list[str]) -> str | None:
    """The virtualenv Gunicorn runs from (its bin/ holds the launcher), if it is one."""
    program = launcher[0]
    if not os.path.isabs(program):
        program = shutil.which(program, path=SECURE_PATH) or program
    root = os.path.dirname(os.path.dirname(program))
    return root if os.path.isfile(os.path.join(root, "pyvenv.cfg")) else None


def editable_installs(venv: str, app_dir: str) -> list[str]:
    """Files in the venv's site-packages that make it import code from the app directory."""
    found = []
    for lib in ("lib", "lib64"):
        base = os.path.join(venv, lib)
        for python in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            site = os.path.join(base, python, "site-packages")
            for name in sorted(os.listdir(site)) if os.path.isdir(site) else []:
                path = os.path.join(site, name)
                candidates = [path] if name.endswith((".pth", ".egg-link")) else []
                if name.endswith(".dist-info"):
                    candidates.append(os.path.join(path, "direct_url.json"))
                for candidate in candidates:
                    try:
                        with open(candidate, encoding="utf-8", errors="replace") as fh:
                            if app_dir in fh.read():
                                found.append(candidate)
                    except OSError:
                        pass
    return found


def git_untracked(app_dir: str) -> set[str] | None:
    """Top-level names git does not track (untracked or ignored), or None without git."""
    if not os.path.isdir(os.path.join(app_dir, ".git")) or not shutil.which("git", path=SECURE_PATH):
        return None
    names: set[str] = set()
    for extra in ([], ["--ignored"]):
        done = run(["git", "-c", "safe.directory=*", "-C", app_dir, "ls-files", "--others", "--directory", "--exclude-standard", "-z", *extra], check=False)
        if done.returncode != 0:
            return None
        names |= {p.split("/", 1)[0] for p in done.stdout.split("\0") if p}
    return names


def classify(app_dir: str, venv: str | None, shared: list[str]) -> tuple[list[Entry], list[str]]:
    """What each top-level entry of the app directory becomes, and warnings about it."""
    entries, warnings = [], []
    untracked = git_untracked(app_dir)
    top_shared = {p.split("/", 1)[0]: p for p in shared}
    for name in sorted(os.listdir(app_dir)):
        path = os.path.join(app_dir, name)
        mode = os.lstat(path).st_mode
        if name == ".git":
            entries.append(Entry(name, "skip", "git metadata (the action never uploads it)"))
        elif venv and os.path.normpath(path) == os.path.normpath(venv):
            entries.append(Entry(name, "skip", "the venv (copied to <release-path>/venv)"))
        elif stat.S_ISDIR(mode) and os.path.isfile(os.path.join(path, "pyvenv.cfg")):
            entries.append(Entry(name, "skip", "a virtualenv Gunicorn does not run from"))
        elif stat.S_ISSOCK(mode):
            entries.append(Entry(name, "skip", "a socket"))
        elif name in CACHES or name.endswith(".pyc"):
            entries.append(Entry(name, "skip", "a cache"))
        elif name in top_shared and top_shared[name] == name:
            entries.append(Entry(name, "shared", "named with --shared"))
        elif name in SHARED_NAMES or (not stat.S_ISDIR(mode) and SHARED_PATTERN.search(name)):
            entries.append(Entry(name, "shared", "secrets or data beside the code (Flask's conventions)"))
        else:
            entries.append(Entry(name, "code", "tracked by git" if untracked is not None and name not in untracked else ""))
            if untracked is not None and name in untracked and name not in top_shared:
                warnings.append(f"{name} is not tracked by git but is copied into the release as code: if the app writes there, run adopt again with --shared {name}")
    for path in shared:
        if not os.path.lexists(os.path.join(app_dir, path)):
            raise Refused(f"--shared {path}: {os.path.join(app_dir, path)} does not exist")
        if "/" in path:
            entries.append(Entry(path, "shared", "named with --shared"))
    return entries, warnings


def tree_size(path: str) -> int:
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def replace_path(text: str, old: str, new: str) -> str:
    """text with the path old (as a whole path, or a prefix of a longer one) replaced by new."""
    return re.sub(re.escape(old.rstrip("/")) + r"(?=$|[/\s\"':=,;])", new.rstrip("/"), text, flags=re.M)


def copy_venv(src: str, dst: str, owner: pwd.struct_passwd) -> int:
    """Copies a venv and rewrites the paths its scripts and pyvenv.cfg name; returns how many files changed."""
    tmp = f"{dst}.adopt-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, symlinks=True)
    changed = 0
    candidates = [os.path.join(tmp, "pyvenv.cfg")]
    bin_dir = os.path.join(tmp, "bin")
    candidates += [os.path.join(bin_dir, n) for n in sorted(os.listdir(bin_dir))]
    for path in candidates:
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as fh:
            data = fh.read()
        if b"\0" in data or src.encode() not in data:
            continue
        text = replace_path(data.decode("utf-8", "surrogateescape"), src, dst)
        with open(path, "wb") as fh:
            fh.write(text.encode("utf-8", "surrogateescape"))
        changed += 1
    os.rename(tmp, dst)
    chown_tree(dst, owner.pw_uid, owner.pw_gid)
    prefix = run([os.path.join(dst, "bin", "python"), "-c", "import sys; print(sys.prefix)"]).stdout.strip()
    if os.path.normpath(prefix) != os.path.normpath(dst):
        raise Failed(f"the copied venv {dst} runs with sys.prefix {prefix}")
    return changed


def chown_tree(path: str, uid: int, gid: int) -> None:
    os.lchown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def copy_code(app_dir: str, release: str, entries: list[Entry]) -> tuple[int, int]:
    """Copies the code entries into the new release directory; returns (files, bytes)."""
    os.makedirs(release)
    files = size = 0
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".git")
    for entry in entries:
        if entry.kind != "code":
            continue
        src, dst = os.path.join(app_dir, entry.name), os.path.join(release, entry.name)
        if os.path.isdir(src) and not os.path.islink(src):
            shutil.copytree(src, dst, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(src, dst, follow_symlinks=False)
    for root, dirs, names in os.walk(release):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(root, name)).st_size
    return files, size


# ---------------------------------------------------------------------------------------------
# what is there: the survey


@dataclass
class Survey:
    unit: Unit
    gunicorn: Gunicorn
    old_cwd: str
    app_dir: str
    main_pid: int
    workers: list[int]
    listens: list[Listen]
    venv: str | None
    nginx: Nginx
    health_path: str
    health_seen: dict[str, int]
    entries: list[Entry]
    warnings: list[str] = field(default_factory=list)


def app_dir_of(unit: Unit, g: Gunicorn) -> tuple[str, str]:
    """(Gunicorn's start directory, the directory its app is imported from)."""
    cwd = unit.props.get("WorkingDirectory") or ""
    if cwd.startswith("!"):
        cwd = cwd[1:]
    if not cwd or cwd == "~":
        raise Refused(
            f"{unit.service} has no WorkingDirectory: adopt cannot tell which directory holds the app",
            "set WorkingDirectory= to the app's directory (or give Gunicorn --chdir), restart, then run adopt again",
        )
    chdir = last(g.options, "chdir") or last(g.env_options, "chdir")
    if chdir is None and isinstance(g.settings.get("chdir"), str):
        chdir = g.settings["chdir"]
    app_dir = os.path.normpath(os.path.join(cwd, chdir)) if chdir else os.path.normpath(cwd)
    for system in ("/", "/usr", "/etc", "/var", "/home", "/opt", "/srv", "/root", "/run", "/tmp"):
        if app_dir == system:
            raise Refused(f"the app's directory would be {app_dir}: adopt copies one app's directory, not {system}")
    if not os.path.isdir(app_dir):
        raise Refused(f"the app's directory {app_dir} does not exist")
    return cwd, app_dir


def find_health(listens: list[Listen], wanted: str | None) -> tuple[str, dict[str, int]]:
    """The path that answers 2xx on the running app: --health-path, else /health, else /."""
    seen: dict[str, int] = {}
    for path in [wanted] if wanted else ["/health", "/"]:
        for listen in listens:
            status = http_get(listen, path)
            seen[path] = status
            if 200 <= status < 300:
                return path, seen
    tried = ", ".join(f"{p} answered {s or 'nothing'}" for p, s in seen.items())
    raise Refused(
        f"the running app answers no 2xx on {listens[0].bind} ({tried})",
        "give --health-path with a path that answers 2xx (adopt proves every step with it)",
    )


def survey(args: argparse.Namespace) -> Survey:
    """Reads the server without changing it; refuses what cannot be converted safely."""
    unit = read_unit(args.service)
    if unit.props.get("ActiveState") != "active" or int(unit.props.get("MainPID") or 0) == 0:
        raise Refused(
            f"{unit.service} is not running ({unit.props.get('ActiveState')}/{unit.props.get('SubState')})",
            "adopt converts a server that serves; start it first, or set up a new server with provision.sh",
        )
    g = read_gunicorn(unit)
    gunicorn_refusals(g)
    old_cwd, app_dir = app_dir_of(unit, g)
    main_pid = int(unit.props["MainPID"])
    listens = listening({main_pid, *children(main_pid)}, cwd_of(main_pid) or app_dir)
    if not listens:
        raise Refused(f"Gunicorn (pid {main_pid}) listens on no socket adopt can see (ss -xlnp, ss -tlnp)")
    venv = find_venv(g.launcher)
    if venv:
        found = editable_installs(venv, app_dir)
        if found:
            raise Refused(
                f"the venv {venv} imports code from {app_dir} (an editable install: {', '.join(found)}): releases would not change the code",
                "install the app into the venv normally (pip install .), or not at all, then run adopt again",
            )
    nginx = read_nginx(listens)
    health, seen = find_health(listens, args.health_path)
    entries, warnings = classify(app_dir, venv, args.shared)
    return Survey(unit, g, old_cwd, app_dir, main_pid, children(main_pid), listens, venv, nginx, health, seen, entries, warnings)


# ---------------------------------------------------------------------------------------------
# the plan: what --apply writes


def systemd_quote(word: str) -> str:
    """One word as systemd reads it in ExecStart= (specifiers and variables escaped)."""
    word = word.replace("%", "%%").replace("$", "$$")
    if word and re.match(r"^[A-Za-z0-9_@%+=:,./-]+$", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class DeployUser:
    name: str
    exists: bool
    key_line: str | None
    key_present: bool
    groups: list[str]


@dataclass
class Plan:
    survey: Survey
    release_path: str
    release_id: str
    venv_target: str | None
    socket: str
    runtime_dir: str | None  # a RuntimeDirectory= the drop-in adds
    stand_in: str  # the stand-in unit's name
    stand_in_socket: str
    argv: list[str]  # the converted ExecStart, with BIND where the socket goes
    workers: int
    dropin: str
    nginx_final: dict[str, str]
    nginx_stand_in: dict[str, str]
    sudoers_path: str
    sudoers: str
    user: DeployUser
    notes: list[str] = field(default_factory=list)

    @property
    def release_dir(self) -> str:
        return f"{self.release_path}/releases/{self.release_id}"

    @property
    def shared(self) -> list[Entry]:
        return [e for e in self.survey.entries if e.kind == "shared"]


BIND = "\0BIND\0"


def workers_wanted(s: Survey) -> tuple[int, bool]:
    """(workers, whether the converted command line must say so): at least two."""
    g = s.gunicorn
    for value in (last(g.options, "workers"), last(g.env_options, "workers")):
        if value is not None:
            return max(int(value), 2), True
    configured = g.settings.get("workers")
    if isinstance(configured, int):
        return (configured, False) if configured >= 2 else (2, True)
    if configured is UNKNOWN and len(s.workers) >= 2:
        return len(s.workers), False
    concurrency = s.unit.env().get("WEB_CONCURRENCY", "")
    if concurrency.isdigit() and int(concurrency) >= 2:
        return int(concurrency), False
    return 2, True


def map_option_path(option: Option, s: Survey, release_path: str) -> str | None:
    """An option's path value as the converted command line gives it (None: unchanged)."""
    if option.value in (None, "-") or option.name not in READ_PATHS | WRITE_PATHS:
        return None
    base = s.old_cwd if option.name == "config" else s.app_dir
    values = option.value.split(",") if option.name == "pythonpath" else [option.value]
    mapped = []
    for value in values:
        absolute = os.path.normpath(os.path.join(base, value))
        if inside(absolute, s.app_dir) and option.name in READ_PATHS:
            mapped.append(os.path.join(release_path, "current", os.path.relpath(absolute, s.app_dir)))
        else:
            mapped.append(absolute)
    new = ",".join(mapped)
    return None if new == option.value else new


def converted_argv(s: Survey, release_path: str, venv_target: str | None) -> tuple[list[str], int]:
    """The converted Gunicorn command line (BIND marks the socket's place) and its workers."""
    g = s.gunicorn
    launcher = list(g.launcher)
    if s.venv and venv_target and inside(launcher[0], s.venv):
        launcher[0] = os.path.join(venv_target, os.path.relpath(launcher[0], s.venv))
    words = list(launcher)
    for option in g.options:
        if option.name in REPLACED:
            continue
        new = map_option_path(option, s, release_path)
        words += option.tokens if new is None else [f"--{option.name}", new]
    if g.config and not g.config_given:
        # Gunicorn found gunicorn.conf.py in its start directory, which becomes release-path.
        words += ["--config", os.path.join(release_path, "current", os.path.relpath(g.config, s.app_dir)) if inside(g.config, s.app_dir) else g.config]
    words += ["--chdir", f"{release_path}/current", "--bind", BIND]
    workers, say_it = workers_wanted(s)
    if say_it:
        words += ["--workers", str(workers)]
    if g.app:
        words.append(g.app)
    return words, workers


def exec_line(argv: list[str], bind: str, prefix: str = "") -> str:
    return prefix + " ".join(systemd_quote(bind if w == BIND else w) for w in argv)


def env_overrides(s: Survey, release_path: str, venv_target: str | None) -> list[str]:
    """Environment= assignments that named the old venv or app directory, with the new paths."""
    lines = []
    for name, value in env_assignments(service_list(s.unit.entries, "Environment")):
        new = value
        if s.venv and venv_target:
            new = replace_path(new, s.venv, venv_target)
        new = replace_path(new, s.app_dir, f"{release_path}/current")
        if new != value:
            lines.append(f"Environment={systemd_quote(f'{name}={new}')}")
    return lines


def socket_for(s: Survey) -> tuple[str, str | None]:
    """The converted unit's socket, and the RuntimeDirectory= to add for it (None: it has one)."""
    dirs = s.unit.props.get("RuntimeDirectory", "").split()
    for listen in s.listens:
        if listen.kind == "unix" and any(inside(listen.address, f"/run/{d}") for d in dirs):
            return listen.address, None
    name = s.unit.name
    if dirs:
        return f"/run/{dirs[0]}/{name}.sock", None
    if os.path.exists(f"/run/{name}") and os.listdir(f"/run/{name}"):
        raise Refused(f"/run/{name} exists and is not empty: adopt would make it the unit's RuntimeDirectory")
    return f"/run/{name}/{name}.sock", name


def dropin_text(s: Survey, argv: list[str], sock: str, runtime_dir: str | None, release_path: str, venv_target: str | None) -> str:
    lines = [
        f"# Written by adopt.sh (flask-zero-downtime-deploy) on {iso_now()}: runs {s.unit.name} from",
        f"# {release_path}/current, the layout the action deploys. The unit file itself is unchanged;",
        "# `adopt.sh --undo` removes this file.",
        "[Service]",
        f"WorkingDirectory={release_path}",
    ]
    if runtime_dir:
        lines.append(f"RuntimeDirectory={runtime_dir}")
    lines += env_overrides(s, release_path, venv_target)
    lines += ["ExecStart=", f"ExecStart={exec_line(argv, f'unix:{sock}', s.gunicorn.prefix)}"]
    lines += ["ExecReload=", "ExecReload=/bin/kill -HUP $MAINPID", ""]
    return "\n".join(lines)


def stand_in_text(unit: Unit, dropin: str, argv: list[str], stand_in: str, sock: str) -> str:
    """The stand-in unit: the unit's own files and the conversion, on its own socket."""
    parts = [f"# Stand-in for {unit.service} while adopt.sh moves traffic; removed when it ends.\n"]
    for path, text in unit.texts:
        parts.append(f"# from {path}\n{text.rstrip()}\n")
    parts.append(f"# the conversion ({DROPIN})\n{dropin}")
    parts.append(
        "\n".join([
            "# the stand-in's own settings",
            "[Service]",
            "ExecStartPre=", "ExecStartPost=", "ExecStop=", "ExecStopPost=", "ExecReload=",
            "RuntimeDirectory=", f"RuntimeDirectory={stand_in}",
            "Restart=no",
            "ExecStart=", f"ExecStart={exec_line(argv, f'unix:{sock}')}",
            "",
        ])
    )
    return "\n".join(parts)


def which(program: str) -> str | None:
    return shutil.which(program, path=SECURE_PATH)


def sudoers_text(user: str, unit: str) -> str:
    """examples/server/sudoers-deploy for this user and unit, with this server's program paths."""
    with open(os.path.join(HERE, "sudoers-deploy"), encoding="utf-8") as fh:
        text = fh.read()
    text = re.sub(r"\bmyapp\b", unit, text)
    text = re.sub(r"^deploy ", f"{user} ", text, flags=re.M)
    for program, default in [("systemctl", "/usr/bin/systemctl"), ("nginx", "/usr/sbin/nginx"), ("pwdx", "/usr/bin/pwdx")]:
        path = which(program)
        if path:
            text = text.replace(default, path)
        elif program == "pwdx":
            text = text.replace(f", {default} *", "")
    return text


def read_key(path: str) -> str:
    """The one public key line of --authorized-key FILE."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = [l.strip() for l in fh if l.strip() and not l.startswith("#")]
    except OSError as error:
        raise Refused(f"--authorized-key {path}: {error}") from error
    if len(lines) != 1 or run(["ssh-keygen", "-lf", path], check=False).returncode != 0:
        raise Refused(f"--authorized-key {path} must hold exactly one SSH public key (the .pub file)")
    return lines[0]


def deploy_user(args: argparse.Namespace, s: Survey) -> DeployUser:
    name = args.deploy_user
    key = read_key(args.authorized_key) if args.authorized_key else None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if not key:
            raise Refused(f"the deploy user {name} does not exist", "give --authorized-key FILE (its public key) to create it")
        entry = None
    present = False
    if entry and key:
        try:
            with open(os.path.join(entry.pw_dir, ".ssh", "authorized_keys"), encoding="utf-8") as fh:
                present = key.split()[1] in fh.read()
        except (OSError, IndexError):
            present = False
    member = set() if not entry else {g.gr_name for g in grp.getgrall() if name in g.gr_mem} | {grp.getgrgid(entry.pw_gid).gr_name}
    wanted = ["systemd-journal", "adm"]
    for group in [s.unit.props.get("Group"), last(s.gunicorn.options, "group")]:
        if group and group not in ("root", "0"):
            wanted.append(group)
    groups = []
    for group in dict.fromkeys(wanted):
        try:
            grp.getgrnam(group)
        except KeyError:
            continue
        if group not in member:
            groups.append(group)
    return DeployUser(name, entry is not None, key, present, groups)


def check_release_path(path: str, s: Survey) -> None:
    if not re.match(r"^/[A-Za-z0-9._/-]+$", path) or os.path.normpath(path) != path or path == "/":
        raise Refused(f"--release-path {path} must be an absolute, normalised path of letters, digits and . _ - /")
    if inside(path, s.app_dir) or inside(s.app_dir, path):
        raise Refused(f"--release-path {path} and the app's directory {s.app_dir} must not contain each other")
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise Refused(f"--release-path {path} exists and is not empty", "give a new path (adopt creates it)")
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    need = sum(tree_size(os.path.join(s.app_dir, e.name)) for e in s.entries if e.kind == "code")
    need += tree_size(s.venv) if s.venv else 0
    free = shutil.disk_usage(parent).free
    if free < need * 2 + 50 * 1048576:
        raise Refused(f"{parent} has {free // 1048576} MiB free; the release and the venv need about {need // 1048576} MiB (twice that, plus 50 MiB, is required)")


def make_plan(args: argparse.Namespace, s: Survey) -> Plan:
    rp = args.release_path
    check_release_path(rp, s)
    venv_target = f"{rp}/venv" if s.venv else None
    sock, runtime_dir = socket_for(s)
    argv, workers = converted_argv(s, rp, venv_target)
    dropin = dropin_text(s, argv, sock, runtime_dir, rp, venv_target)
    stand_in = f"{STAND_IN_PREFIX}{s.unit.name}"
    stand_in_socket = f"/run/{stand_in}/gunicorn.sock"
    final = {p: retarget(t, s.nginx.edits[p], sock) for p, t in s.nginx.files.items()}
    interim = {p: retarget(t, s.nginx.edits[p], stand_in_socket) for p, t in s.nginx.files.items()}
    user = deploy_user(args, s)
    notes = list(s.warnings)
    if not s.venv:
        notes.append(f"Gunicorn does not run from a virtualenv ({s.gunicorn.launcher[0]}): the action installs requirements.txt only into a venv the unit names")
    if not s.unit.props.get("User") or s.unit.props.get("User") == "root":
        if not last(s.gunicorn.options, "user"):
            notes.append("the app runs as root: code the deploy user deploys runs as root, so deploy rights are root rights; consider User= in the unit")
    return Plan(
        s, rp, args.release_id or f"adopted-{now_id()}", venv_target, sock, runtime_dir, stand_in,
        stand_in_socket, argv, workers, dropin, final, interim,
        f"/etc/sudoers.d/{user.name}-{s.unit.name}", sudoers_text(user.name, s.unit.name), user, notes,
    )


# ---------------------------------------------------------------------------------------------
# printing the plan


def diff(path: str, old: str | None, new: str) -> str:
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True), new.splitlines(keepends=True),
        fromfile="/dev/null" if old is None else path, tofile=path,
    )
    return "".join(lines).rstrip("\n")


def current_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return None


def print_found(s: Survey) -> None:
    u, g = s.unit, s.gunicorn
    say("What runs now")
    say(f"  unit      {u.service} ({u.fragment}{', drop-ins ' + ', '.join(u.dropins) if u.dropins else ''})")
    say(f"            User={u.props.get('User') or 'root'} Group={u.props.get('Group') or '-'}, running: master {s.main_pid}, {len(s.workers)} workers")
    say(f"  Gunicorn  {' '.join(service_list(u.entries, 'ExecStart'))}")
    if g.config:
        say(f"            config file {g.config}")
    say(f"  app       {s.app_dir} (Gunicorn starts in {s.old_cwd}), WSGI app {g.app or g.settings.get('wsgi_app')}")
    say(f"  listens   {', '.join(listen.bind for listen in s.listens)}")
    say(f"  venv      {s.venv or '(none: ' + g.launcher[0] + ')'}")
    for path, edits in s.nginx.edits.items():
        say(f"  Nginx     {path} proxies to it ({len(edits)} place{'s' if len(edits) > 1 else ''}); workers run as {s.nginx.user}")
    seen = ", ".join(f"{p} answers {c or 'nothing'}" for p, c in s.health_seen.items())
    say(f"  health    {seen}: adopt proves every step with GET {s.health_path}")
    say()


def print_layout(p: Plan) -> None:
    s = p.survey
    code = [e.name for e in s.entries if e.kind == "code"]
    say("Directories it creates or copies")
    say(f"  {p.release_path}/ (owner {p.user.name}), with releases/, shared/ and .deploy-log.jsonl")
    say(f"  {p.release_dir}/: a copy of {s.app_dir}: {', '.join(code) or '(nothing)'}")
    say(f"    marked as predating the action ({MARKER}: adopted, health path {s.health_path})")
    for e in s.entries:
        if e.kind == "skip":
            say(f"    left out: {e.name}: {e.why}")
    for e in p.shared:
        say(f"  {p.release_path}/shared/{e.name} -> {os.path.join(s.app_dir, e.name)} (stays where it is: {e.why});")
        say(f"    {p.release_dir}/{e.name} -> {p.release_path}/shared/{e.name}")
    say(f"  {p.release_path}/current -> releases/{p.release_id}")
    if s.venv:
        say(f"  {p.venv_target}/: a copy of the venv {s.venv} (its scripts' paths rewritten), owner {p.user.name}, so the action's pip can write to it")
    say()


def print_files(p: Plan) -> None:
    s = p.survey
    say("Files it writes or changes")
    blocks = [(s.unit.dropin_path, current_text(s.unit.dropin_path), p.dropin)]
    blocks += [(path, s.nginx.files[path], text) for path, text in p.nginx_final.items()]
    blocks.append((p.sudoers_path, current_text(p.sudoers_path), p.sudoers))
    for path, old, new in blocks:
        say(diff(path, old, new) if old != new else f"(unchanged) {path}")
        say()
    u = p.user
    if not u.exists:
        say(f"  creates the user {u.name} (useradd --create-home) with the key of --authorized-key in ~{u.name}/.ssh/authorized_keys")
    elif u.key_line and not u.key_present:
        say(f"  adds the key of --authorized-key to ~{u.name}/.ssh/authorized_keys")
    if u.groups:
        say(f"  adds {u.name} to the groups {', '.join(u.groups)} (the journal, the Nginx logs, the app's files), as provision.sh does")
    say()


def print_steps(p: Plan) -> None:
    s = p.survey
    old = ", ".join(l.bind for l in s.listens)
    say("How traffic moves (no request is dropped: each Nginx reload is graceful, and a process stops only once nothing reaches it)")
    steps = [
        f"start the stand-in unit {p.stand_in} (the converted command, {p.workers} workers) on unix:{p.stand_in_socket}, beside {s.unit.service}",
        f"prove it: GET {s.health_path} answers 2xx, its workers run in {p.release_dir}, and Nginx's user {s.nginx.user} can connect",
        f"point Nginx at the stand-in (nginx -t, then a graceful reload); wait for Nginx's old workers and {old}'s queue to empty",
        f"stop {s.unit.service}; add the drop-in, systemctl daemon-reload, start {s.unit.service} on unix:{p.socket} and prove it the same way",
        f"point Nginx at unix:{p.socket} (graceful reload); wait for the stand-in's queue to empty; stop and remove the stand-in",
        "run the action's own mode: check against this server, and print the workflow snippet",
    ]
    for i, step in enumerate(steps, 1):
        say(f"  {i}. {step}")
    say()
    for n in p.notes:
        say(f"Note: {n}")
    if p.notes:
        say()


def print_plan(p: Plan) -> None:
    say(f"adopt: plan for {p.survey.unit.service} (this run changes nothing; --apply does the following)")
    say()
    print_found(p.survey)
    print_layout(p)
    print_files(p)
    print_steps(p)


# ---------------------------------------------------------------------------------------------
# the journal: what --apply changed, so that --undo (or a failed --apply) can put it back


class Journal:
    def __init__(self, unit: str):
        self.dir = os.path.join(STATE_ROOT, unit)
        self.file = os.path.join(self.dir, "journal.json")
        self.data: dict = {}

    def load(self) -> bool:
        try:
            with open(self.file, encoding="utf-8") as fh:
                self.data = json.load(fh)
            return True
        except (OSError, ValueError):
            return False

    def begin(self, data: dict) -> None:
        os.makedirs(STATE_ROOT, mode=0o700, exist_ok=True)
        shutil.rmtree(os.path.join(self.dir, "files"), ignore_errors=True)
        os.makedirs(os.path.join(self.dir, "files"), mode=0o700, exist_ok=True)
        self.data = {"version": 1, "status": "applying", "time": iso_now(), **data}
        self.save()

    def save(self) -> None:
        tmp = f"{self.file}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.data, fh, indent=1)
        os.chmod(tmp, 0o600)
        os.rename(tmp, self.file)

    def record(self, key: str, value) -> None:
        self.data[key] = value
        self.save()

    def backup(self, path: str) -> str:
        """Keeps a copy of path (with its mode and owner) and returns the copy's path."""
        copy = os.path.join(self.dir, "files", hashlib.sha256(path.encode()).hexdigest()[:16])
        shutil.copy2(path, copy)
        st = os.stat(path)
        self.data.setdefault("owners", {})[path] = [st.st_mode & 0o7777, st.st_uid, st.st_gid]
        self.save()
        return copy


def write_file(path: str, text: str, like: str | None = None, mode: int = 0o644) -> None:
    """Writes path atomically (a hidden temporary file renamed over it), keeping like's mode and owner."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.adopt-tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    if like and os.path.exists(like):
        st = os.stat(like)
        os.chmod(tmp, st.st_mode & 0o7777)
        os.chown(tmp, st.st_uid, st.st_gid)
    else:
        os.chmod(tmp, mode)
    os.rename(tmp, path)


# ---------------------------------------------------------------------------------------------
# moving traffic


def journal_tail(service: str) -> str:
    out = run(["journalctl", "-u", service, "-n", "15", "--no-pager", "-o", "cat"], check=False).stdout
    return "\n    ".join(out.strip().splitlines()) or "(no journal lines)"


def nginx_can_connect(user: str, path: str) -> bool:
    code = "import socket, sys; s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])"
    return run(["runuser", "-u", user, "--", sys.executable, "-c", code, path], check=False).returncode == 0


@dataclass
class Proof:
    """What proves a Gunicorn serves: its socket answers 2xx at one of the paths, with enough workers in cwd."""
    listen: Listen
    paths: list[str]
    workers: int
    cwd: str | None


class Handover:
    """Moves Nginx's traffic between Gunicorns through a stand-in, without dropping a request."""

    def __init__(self, unit: str, stand_in: str, nginx_user: str, nginx_pidfile: str):
        self.unit = unit
        self.stand_in = stand_in
        self.nginx_user = nginx_user
        self.nginx_pidfile = nginx_pidfile
        self.stand_in_file = f"/run/systemd/system/{stand_in}.service"

    def prove(self, service: str, proof: Proof) -> None:
        deadline = time.monotonic() + PROOF_SECONDS
        why = "it did not start"
        while time.monotonic() < deadline:
            props = show(service, ["ActiveState", "MainPID"])
            pid = int(props.get("MainPID") or 0)
            if props.get("ActiveState") == "failed":
                break
            ok = [p for p in proof.paths if pid and 200 <= http_get(proof.listen, p) < 300]
            kids = children(pid) if pid else []
            dirs = {k: os.path.realpath(cwd_of(k) or "?") for k in kids}
            wrong = [f"{k} in {d}" for k, d in dirs.items() if proof.cwd and d != proof.cwd]
            if not ok:
                why = f"GET {' or '.join(proof.paths)} on {proof.listen.bind} answered no 2xx"
            elif len(kids) < proof.workers:
                why = f"{len(kids)} of {proof.workers} workers up"
            elif wrong:
                why = f"worker {wrong[0]}, not {proof.cwd}"
            else:
                step(f"{service}: master {pid}, {len(kids)} workers{' in ' + proof.cwd if proof.cwd else ''}, GET {ok[0]} answers 2xx on {proof.listen.bind}")
                return
            time.sleep(0.2)
        raise Failed(f"{service} did not prove itself within {PROOF_SECONDS} s: {why}\n    {journal_tail(service)}")

    def start_stand_in(self, text: str, proof: Proof) -> None:
        step(f"starting the stand-in {self.stand_in} on {proof.listen.bind}")
        write_file(self.stand_in_file, text)
        run(["systemctl", "daemon-reload"])
        run(["systemctl", "start", f"{self.stand_in}.service"], check=False, timeout=PROOF_SECONDS + 30)
        self.prove(f"{self.stand_in}.service", proof)
        if proof.listen.kind == "unix" and not nginx_can_connect(self.nginx_user, proof.listen.address):
            raise Failed(f"Nginx's user {self.nginx_user} cannot connect to {proof.listen.address}: check the socket's group and Gunicorn's --umask")

    def stop_stand_in(self) -> None:
        run(["systemctl", "stop", f"{self.stand_in}.service"], check=False, timeout=120)
        if os.path.exists(self.stand_in_file):
            os.unlink(self.stand_in_file)
        run(["systemctl", "daemon-reload"], check=False)
        run(["systemctl", "reset-failed", f"{self.stand_in}.service"], check=False)

    def switch_nginx(self, texts: dict[str, str], drain: list[Listen]) -> None:
        """Writes the Nginx files, reloads Nginx gracefully, and waits until nothing reaches drain."""
        before = {path: current_text(path) for path in texts}
        for path, text in texts.items():
            write_file(path, text, like=path)
        test = run(["nginx", "-t"], check=False)
        if test.returncode != 0:
            for path, text in before.items():
                write_file(path, text or "", like=path)
            raise Failed(f"nginx -t refused the new configuration (put back as it was): {test.stderr.strip()[-800:]}")
        with open(self.nginx_pidfile, encoding="ascii") as fh:
            master = int(fh.read().strip())
        old = nginx_workers(master)
        if run(["systemctl", "is-active", "--quiet", "nginx"], check=False).returncode == 0:
            run(["systemctl", "reload", "nginx"])
        else:
            run(["nginx", "-s", "reload"])
        self.wait(lambda: not (old & nginx_workers(master)), 60, "Nginx's old workers to finish their requests")
        for listen in drain:
            self.wait(lambda: not accept_queue(listen), 30, f"the queue of {listen.bind} to empty")
        step(f"Nginx reloaded: {', '.join(texts)} {'(' + str(len(texts)) + ' files) ' if len(texts) > 1 else ''}now in use")

    def wait(self, done, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            if time.monotonic() > deadline:
                raise Failed(f"gave up waiting for {what} after {seconds:.0f} s")
            time.sleep(0.1)

    def restart_unit(self, dropin_path: str, dropin: str | None, proof: Proof) -> None:
        """Stops the unit, adds (or removes) the drop-in, starts it and proves it."""
        step(f"stopping {self.unit} (nothing reaches it any more)")
        run(["systemctl", "stop", self.unit], timeout=180)
        if dropin is None:
            if os.path.exists(dropin_path):
                os.unlink(dropin_path)
        else:
            os.makedirs(os.path.dirname(dropin_path), exist_ok=True)
            write_file(dropin_path, dropin)
        run(["systemctl", "daemon-reload"])
        step(f"starting {self.unit} {'converted' if dropin else 'as it was'}")
        run(["systemctl", "start", self.unit], check=False, timeout=PROOF_SECONDS + 30)
        self.prove(self.unit, proof)


# ---------------------------------------------------------------------------------------------
# --apply


def app_gid(s: Survey) -> int:
    """The group the app's workers run as: they must read the release and the venv."""
    group = last(s.gunicorn.options, "group") or s.unit.props.get("Group")
    if group:
        return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    user = last(s.gunicorn.options, "user") or s.unit.props.get("User") or "root"
    return pwd.getpwuid(int(user)).pw_gid if user.isdigit() else pwd.getpwnam(user).pw_gid


def share_with_group(path: str, uid: int, gid: int) -> None:
    """path and everything in it: owned by uid:gid, readable by the group (other bits kept)."""
    for root, dirs, files in os.walk(path):
        for name in [root, *[os.path.join(root, d) for d in dirs], *[os.path.join(root, f) for f in files]]:
            os.lchown(name, uid, gid)
            if not os.path.islink(name):
                mode = os.lstat(name).st_mode
                extra = 0o750 if stat.S_ISDIR(mode) else (0o640 | (0o110 if mode & 0o100 else 0))
                os.chmod(name, (mode & 0o7777) | extra)


def prepare_user(p: Plan, j: Journal) -> pwd.struct_passwd:
    u = p.user
    if not u.exists:
        j.record("userCreated", True)
        step(f"creating the user {u.name}")
        run(["useradd", "--create-home", "--shell", "/bin/bash", u.name])
    entry = pwd.getpwnam(u.name)
    if u.key_line and not u.key_present:
        ssh = os.path.join(entry.pw_dir, ".ssh")
        os.makedirs(ssh, mode=0o700, exist_ok=True)
        os.chown(ssh, entry.pw_uid, entry.pw_gid)
        keys = os.path.join(ssh, "authorized_keys")
        j.record("keyAdded", u.key_line)
        with open(keys, "a", encoding="utf-8") as fh:
            fh.write(u.key_line + "\n")
        os.chown(keys, entry.pw_uid, entry.pw_gid)
        os.chmod(keys, 0o600)
    added = []
    for group in u.groups:
        added.append(group)
        j.record("groupsAdded", added)
        run(["usermod", "-aG", group, u.name])
    return entry


def install_sudoers(p: Plan, j: Journal) -> None:
    existing = current_text(p.sudoers_path)
    backup = j.backup(p.sudoers_path) if existing is not None else None
    j.record("sudoers", {"path": p.sudoers_path, "backup": backup, "sha": sha256(p.sudoers)})
    tmp = os.path.join("/etc/sudoers.d", f".adopt-{p.user.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(p.sudoers)
    os.chmod(tmp, 0o440)
    check = run(["visudo", "-cqf", tmp], check=False)
    if check.returncode != 0:
        os.unlink(tmp)
        raise Failed(f"visudo refused the sudoers file: {check.stderr.strip() or check.stdout.strip()}")
    os.rename(tmp, p.sudoers_path)
    step(f"installed {p.sudoers_path}")


def link_shared(p: Plan, release: str) -> None:
    s = p.survey
    shared = os.path.join(p.release_path, "shared")
    for e in p.shared:
        target = os.path.join(shared, e.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(os.path.join(s.app_dir, e.name), target)
        inside_release = os.path.join(release, e.name)
        if os.path.isdir(inside_release) and not os.path.islink(inside_release):
            shutil.rmtree(inside_release)
        elif os.path.lexists(inside_release):
            os.unlink(inside_release)
        os.makedirs(os.path.dirname(inside_release), exist_ok=True)
        os.symlink(target, inside_release)


def make_layout(p: Plan, j: Journal, owner: pwd.struct_passwd) -> None:
    s, rp = p.survey, p.release_path
    uid, gid = owner.pw_uid, app_gid(s)
    j.record("releasePathCreated", not os.path.exists(rp))
    for path in (rp, f"{rp}/releases", f"{rp}/shared"):
        os.makedirs(path, exist_ok=True)
        os.chown(path, uid, owner.pw_gid)
        os.chmod(path, 0o755)
    staging = f"{rp}/releases/.adopting-{p.release_id}"
    files, size = copy_code(s.app_dir, staging, s.entries)
    step(f"copied {files} files ({size // 1024} KiB) of {s.app_dir} into {p.release_dir}")
    marker = {"id": p.release_id, "time": iso_now(), "adopted": {"from": s.app_dir, "healthPath": s.health_path, "by": "adopt.sh"}}
    with open(os.path.join(staging, MARKER), "w", encoding="utf-8") as fh:
        json.dump(marker, fh)
        fh.write("\n")
    share_with_group(staging, uid, gid)
    os.rename(staging, p.release_dir)
    link_shared(p, p.release_dir)
    os.symlink(f"releases/{p.release_id}", f"{rp}/current")
    os.lchown(f"{rp}/current", uid, owner.pw_gid)
    for e in p.shared:
        os.lchown(f"{rp}/shared/{e.name}", uid, owner.pw_gid)
        os.lchown(f"{p.release_dir}/{e.name}", uid, owner.pw_gid)
    if s.venv and p.venv_target:
        changed = copy_venv(s.venv, p.venv_target, owner)
        share_with_group(p.venv_target, uid, gid)
        step(f"copied the venv {s.venv} to {p.venv_target} ({changed} files named its path)")
    entry = {"id": p.release_id, "host": socket.gethostname(), "action": "deploy", "outcome": "deployed", "sha": "", "actor": "adopt.sh", "run": "adopt.sh --apply", "time": iso_now()}
    log = f"{rp}/.deploy-log.jsonl"
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
    os.chown(log, uid, owner.pw_gid)


def handover_forward(p: Plan, j: Journal) -> None:
    s = p.survey
    h = Handover(s.unit.service, p.stand_in, s.nginx.user, s.nginx.pidfile)
    stand_in = Listen("unix", p.stand_in_socket)
    new = Proof(Listen("unix", p.socket), [s.health_path], p.workers, os.path.realpath(p.release_dir))
    old = Proof(s.listens[0], [s.health_path], len(s.workers), None)
    nginx_backups = {path: {"backup": j.backup(path), "sha": sha256(text)} for path, text in p.nginx_final.items()}
    j.record("nginx", nginx_backups)
    j.record("dropin", {"path": s.unit.dropin_path, "sha": sha256(p.dropin), "dirCreated": not os.path.isdir(os.path.dirname(s.unit.dropin_path))})
    try:
        h.start_stand_in(stand_in_text(s.unit, p.dropin, p.argv, p.stand_in, p.stand_in_socket), Proof(stand_in, [s.health_path], p.workers, new.cwd))
    except Failed:
        h.stop_stand_in()
        raise
    stage = "stand-in"
    try:
        h.switch_nginx(p.nginx_stand_in, drain=s.listens)
        stage = "unit"
        h.restart_unit(s.unit.dropin_path, p.dropin, new)
    except Failed as error:
        step(f"{error}\nadopt: going back: {s.unit.service} as it was, Nginx as it was")
        try:
            if stage == "unit":
                h.restart_unit(s.unit.dropin_path, None, old)
            h.switch_nginx(dict(s.nginx.files), drain=[stand_in])
            h.stop_stand_in()
        except Failed as stuck:
            raise Stuck(f"{error}\nGoing back failed too: {stuck}\nThe stand-in {p.stand_in} may still serve; see systemctl status {p.stand_in} {s.unit.service}") from stuck
        raise
    h.switch_nginx(p.nginx_final, drain=[stand_in])
    h.stop_stand_in()


class Stuck(Failed):
    """Going back after a failure failed too: a person has to look."""


def apply(p: Plan, j: Journal) -> None:
    s = p.survey
    j.begin({
        "unit": s.unit.name, "releasePath": p.release_path, "releaseId": p.release_id, "appDir": s.app_dir,
        "healthPath": s.health_path, "socket": p.socket, "standIn": p.stand_in, "standInSocket": p.stand_in_socket,
        "oldListens": [[l.kind, l.address] for l in s.listens], "argv": p.argv, "workers": p.workers,
        "dropinText": p.dropin, "user": p.user.name, "nginxUser": s.nginx.user, "nginxPidfile": s.nginx.pidfile,
    })
    try:
        owner = prepare_user(p, j)
        install_sudoers(p, j)
        make_layout(p, j, owner)
        handover_forward(p, j)
    except Stuck:
        j.record("status", "stuck")
        raise
    except (Failed, OSError) as error:
        step(f"--apply failed: {error}\nadopt: undoing what it did")
        undo_rest(j)
        j.record("status", "failed")
        raise Failed(f"{error}\n(everything adopt changed was put back; the server serves as before)") from error
    j.record("status", "applied")
    step(f"done: {s.unit.service} serves {p.release_dir} through {p.release_path}/current on unix:{p.socket}")


# ---------------------------------------------------------------------------------------------
# --undo


def undo_rest(j: Journal) -> None:
    """Puts back everything but the unit and Nginx (sudoers, user, release path), as the journal says."""
    d = j.data
    sudo = d.get("sudoers")
    if sudo:
        if sudo.get("backup"):
            shutil.copy2(sudo["backup"], sudo["path"])
        elif os.path.exists(sudo["path"]):
            os.unlink(sudo["path"])
    user = d.get("user", "")
    if d.get("userCreated"):
        run(["userdel", "--remove", user], check=False)
    else:
        if d.get("keyAdded"):
            remove_key(user, d["keyAdded"])
        for group in d.get("groupsAdded", []):
            run(["gpasswd", "-d", user, group], check=False)
    if d.get("releasePathCreated") and d.get("releasePath"):
        shutil.rmtree(d["releasePath"], ignore_errors=True)


def remove_key(user: str, line: str) -> None:
    try:
        path = os.path.join(pwd.getpwnam(user).pw_dir, ".ssh", "authorized_keys")
        with open(path, encoding="utf-8") as fh:
            kept = [l for l in fh if l.strip() != line.strip()]
        write_file(path, "".join(kept), like=path)
    except (KeyError, OSError):
        pass


def changed_since(j: Journal) -> list[str]:
    """Files adopt wrote that someone changed since (undo would lose their change)."""
    d, changed = j.data, []
    for path, info in d.get("nginx", {}).items():
        if sha256(current_text(path) or "") != info["sha"]:
            changed.append(f"{path} (adopt's backup of the original: {info['backup']})")
    dropin = d.get("dropin")
    if dropin and os.path.exists(dropin["path"]) and sha256(current_text(dropin["path"]) or "") != dropin["sha"]:
        changed.append(dropin["path"])
    sudo = d.get("sudoers")
    if sudo and os.path.exists(sudo["path"]) and sha256(current_text(sudo["path"]) or "") != sudo["sha"]:
        changed.append(sudo["path"])
    return changed


def handover_back(j: Journal) -> None:
    d = j.data
    unit = read_unit(d["unit"])
    h = Handover(unit.service, d["standIn"], d["nginxUser"], d["nginxPidfile"])
    release = os.path.realpath(os.path.join(d["releasePath"], "current"))
    stand_in = Listen("unix", d["standInSocket"])
    converted = Listen("unix", d["socket"])
    old = [Listen(kind, address) for kind, address in d["oldListens"]]
    try:
        h.start_stand_in(stand_in_text(unit, d["dropinText"], d["argv"], d["standIn"], d["standInSocket"]), Proof(stand_in, [d["healthPath"], "/health"], d["workers"], release))
    except Failed:
        h.stop_stand_in()
        raise
    now = {path: current_text(path) or "" for path in d["nginx"]}
    interim = {path: retarget(text, find_edits(text, [converted])[0], d["standInSocket"]) for path, text in now.items()}
    originals = {}
    for path, info in d["nginx"].items():
        with open(info["backup"], encoding="utf-8") as fh:
            originals[path] = fh.read()
    try:
        h.switch_nginx(interim, drain=[converted])
        h.restart_unit(unit.dropin_path, None, Proof(old[0], [d["healthPath"]], 1, None))
    except Failed as error:
        try:
            if not os.path.exists(unit.dropin_path):
                h.restart_unit(unit.dropin_path, d["dropinText"], Proof(converted, [d["healthPath"], "/health"], d["workers"], release))
            h.switch_nginx(now, drain=[stand_in])
            h.stop_stand_in()
        except Failed as stuck:
            raise Stuck(f"{error}\nGoing back failed too: {stuck}") from stuck
        raise
    h.switch_nginx(originals, drain=[stand_in])
    h.stop_stand_in()
    dropin_dir = os.path.dirname(unit.dropin_path)
    if d["dropin"].get("dirCreated") and os.path.isdir(dropin_dir) and not os.listdir(dropin_dir):
        os.rmdir(dropin_dir)
        run(["systemctl", "daemon-reload"], check=False)


def undo(j: Journal) -> int:
    if not j.load() or j.data.get("status") != "applied":
        status = j.data.get("status", "no run") if j.data else "no run"
        raise Refused(f"there is nothing to undo for this unit (last adopt run: {status}; journal {j.file})")
    changed = changed_since(j)
    if changed:
        raise Refused(
            "files adopt wrote were changed since, and undo would lose those changes: " + "; ".join(changed),
            "put back what adopt wrote, or restore the files by hand from the backups named",
        )
    d = j.data
    lock = os.path.join(d["releasePath"], ".deploy-lock")
    try:
        os.mkdir(lock)
    except FileExistsError as error:
        raise Refused(f"a deploy holds {lock}", "wait for it to end, then run --undo again") from error
    except FileNotFoundError:
        lock = ""
    try:
        if os.path.exists(d["dropin"]["path"]):
            handover_back(j)
        undo_rest(j)
    except Stuck:
        j.record("status", "stuck")
        raise
    finally:
        if lock and os.path.isdir(lock):
            os.rmdir(lock)
    j.record("status", "undone")
    step(f"undone: {d['unit']}.service runs from {d['appDir']} as before adopt ran; Nginx, sudoers and users are as they were")
    return 0


# ---------------------------------------------------------------------------------------------
# the check and the workflow snippet


def host_keys() -> list[tuple[str, str]]:
    """(public key line, `ssh-keygen -lf` line) of each of this server's SSH host keys, ed25519 first."""
    keys = []
    for path in sorted(glob_pub("/etc/ssh"), key=lambda p: (0 if "ed25519" in p else 1, p)):
        with open(path, encoding="utf-8") as fh:
            line = " ".join(fh.read().split()[:2])
        keys.append((line, run(["ssh-keygen", "-lf", path], check=False).stdout.strip()))
    return keys


def glob_pub(directory: str) -> list[str]:
    return [os.path.join(directory, n) for n in os.listdir(directory) if n.startswith("ssh_host_") and n.endswith("_key.pub")]


def ssh_port() -> int:
    out = run(["sshd", "-T"], check=False).stdout
    ports = re.findall(r"^port (\d+)$", out, re.M)
    return int(ports[0]) if ports else 22


@dataclass
class Target:
    """The workflow's values for this server, as --apply left it."""
    unit: str
    release_path: str
    socket: str
    health_path: str
    user: str
    shared: list[str]

    @property
    def health_url(self) -> str:
        return f"http://unix:{self.socket}:{self.health_path}"

    def inputs(self) -> list[tuple[str, str]]:
        rows = [("service", self.unit), ("release-path", self.release_path), ("health-url", self.health_url)]
        return rows + ([("shared-paths", ",".join(self.shared))] if self.shared else [])


def target_of(j: Journal) -> Target:
    d = j.data
    shared = sorted(n for n in os.listdir(os.path.join(d["releasePath"], "shared"))) if os.path.isdir(os.path.join(d["releasePath"], "shared")) else []
    return Target(d["unit"], d["releasePath"], d["socket"], d["healthPath"], d["user"], shared)


def workflow_step(t: Target, mode: str | None = None) -> str:
    lines = ["      - uses: OWNER/flask-zero-downtime-deploy@v1", "        with:"]
    if mode:
        lines.append(f"          mode: {mode}")
    lines += [
        "          host: ${{ vars.DEPLOY_HOSTS }}",
        f"          username: {t.user}",
        "          private-key: ${{ secrets.DEPLOY_KEY }}",
        "          known-hosts: ${{ vars.DEPLOY_KNOWN_HOSTS }}",
    ]
    lines += [f"          {name}: {value}" for name, value in t.inputs()]
    return "\n".join(lines)


def find_bundle(check_with: str | None) -> str | None:
    candidates = [os.path.join(check_with, "dist", "index.js"), os.path.join(check_with, "index.js")] if check_with else [os.path.join(HERE, "..", "..", "dist", "index.js")]
    for path in candidates:
        if os.path.isfile(path):
            return os.path.realpath(path)
    return None


def find_node() -> str | None:
    node = which("node")
    if not node:
        return None
    version = run([node, "--version"], check=False).stdout.strip()
    m = re.match(r"^v(\d+)\.", version)
    return node if m and int(m.group(1)) >= 20 else None


def run_check(t: Target, check_with: str | None) -> bool | None:
    """Runs the action's own mode: check against this server (True: clean, False: findings, None: not run)."""
    bundle, node = find_bundle(check_with), find_node()
    if not bundle or not node:
        why = "no Node.js 20 or newer on this server" if not node else "the action's bundle (dist/index.js) was not found: give --check-with DIR, a checkout of the action"
        say()
        note(f"the action's check was NOT run ({why}). Run it from your workflow with this step before the first deploy:")
        say()
        say(workflow_step(t, "check"))
        say()
        return None
    keys = host_keys()
    if not keys:
        note("the action's check was NOT run: this server has no SSH host key in /etc/ssh")
        return None
    say()
    note(f"running the action's mode: check ({bundle}) against this server over SSH to 127.0.0.1 as {t.user}")
    tmp = tempfile.mkdtemp(prefix="zdd-adopt-check-")
    key_line = ""
    try:
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"zdd-adopt-check-{now_id()}", "-f", f"{tmp}/key"])
        with open(f"{tmp}/key.pub", encoding="utf-8") as fh:
            key_line = 'from="127.0.0.1,::1",no-agent-forwarding,no-X11-forwarding,no-pty ' + fh.read().strip()
        add_temporary_key(t.user, key_line)
        return check_with_bundle(t, node, bundle, tmp, keys[0][0])
    finally:
        if key_line:
            remove_key(t.user, key_line)
        shutil.rmtree(tmp, ignore_errors=True)


def add_temporary_key(user: str, line: str) -> None:
    entry = pwd.getpwnam(user)
    ssh = os.path.join(entry.pw_dir, ".ssh")
    os.makedirs(ssh, mode=0o700, exist_ok=True)
    os.chown(ssh, entry.pw_uid, entry.pw_gid)
    path = os.path.join(ssh, "authorized_keys")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    os.chown(path, entry.pw_uid, entry.pw_gid)
    os.chmod(path, 0o600)


def check_with_bundle(t: Target, node: str, bundle: str, tmp: str, host_key: str) -> bool:
    port = ssh_port()
    with open(f"{tmp}/key", encoding="utf-8") as fh:
        private = fh.read()
    env = {
        "PATH": SECURE_PATH, "HOME": tmp, "GITHUB_WORKSPACE": tmp, "RUNNER_TEMP": tmp,
        "GITHUB_OUTPUT": f"{tmp}/output", "GITHUB_STEP_SUMMARY": f"{tmp}/summary",
        "INPUT_MODE": "check", "INPUT_HOST": f"{t.user}@127.0.0.1:{port}", "INPUT_PRIVATE-KEY": private,
        "INPUT_KNOWN-HOSTS": f"{'127.0.0.1' if port == 22 else f'[127.0.0.1]:{port}'} {host_key}\n",
        "INPUT_GITHUB-DEPLOYMENT": "false",
    }
    for name, value in t.inputs():
        env[f"INPUT_{name.upper()}"] = value
    for name in ("output", "summary"):
        open(f"{tmp}/{name}", "w").close()
    try:
        done = subprocess.run([node, bundle], env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        note("the action's check did not finish within 300 s; run it from your workflow")
        return False
    for line in done.stdout.splitlines():
        if not line.startswith("::add-mask::"):
            say(f"  | {line}")
    clean = done.returncode == 0
    errors = sum(1 for l in done.stdout.splitlines() if l.startswith("::error"))
    warnings = sum(1 for l in done.stdout.splitlines() if l.startswith("::warning"))
    note(f"the action's check {'passed' if clean else 'FAILED'}: {errors} error(s), {warnings} warning(s) (above)")
    return clean


def print_snippet(t: Target) -> None:
    host = socket.getfqdn()
    say()
    say("The workflow step for this server (the whole workflow: the README's first screen):")
    say()
    say(workflow_step(t))
    say()
    say("The host key to pin: on a machine you trust, `ssh-keyscan -t ed25519 HOST` for the name or")
    say(f"address the runner uses (this server calls itself {host}); its fingerprint must be one of:")
    for _, fingerprint in host_keys():
        say(f"  {fingerprint}")
    say("Then set, in the repository's environment (Settings -> Environments -> production):")
    say(f"  DEPLOY_KEY          secret: the private key whose public half is in ~{t.user}/.ssh/authorized_keys")
    say("  DEPLOY_KNOWN_HOSTS  variable: the checked `ssh-keyscan` lines")
    say(f"  DEPLOY_HOSTS        variable: {host} (or the address the runner reaches)")
    if t.health_path != "/health":
        say(f"health-url uses {t.health_path}, which answers 2xx today. A /health route that names the release (README, The first deploy) proves more.")


# ---------------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="adopt.sh",
        description="Converts a running Flask + Gunicorn + systemd + Nginx server to the layout flask-zero-downtime-deploy deploys, without dropping a request. Without --apply or --undo it only prints the plan.",
    )
    parser.add_argument("--service", required=True, help="the systemd unit that runs Gunicorn (myproject or myproject.service)")
    parser.add_argument("--release-path", required=True, help="the new app root: releases/, shared/, current (created; must not exist or be empty)")
    parser.add_argument("--deploy-user", required=True, help="the SSH user the workflow deploys as (created when it does not exist, with --authorized-key)")
    parser.add_argument("--authorized-key", help="the public key (.pub) the workflow's private-key matches")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--apply", action="store_true", help="convert the server")
    mode.add_argument("--undo", action="store_true", help="put back what the last --apply changed")
    parser.add_argument("--health-path", help="a path the running app answers 2xx on (default: /health, else /)")
    parser.add_argument("--shared", action="append", default=[], metavar="NAME", help="a file or directory in the app directory the app writes or keeps secrets in, linked from shared/ (default: .env, instance/, *.db, *.sqlite); repeatable")
    parser.add_argument("--release-id", help="the first release's id (default adopted-<UTC time>)")
    parser.add_argument("--check-with", metavar="DIR", help="a checkout of the action: its dist/index.js runs mode: check against this server at the end (default: the checkout this script is in)")
    args = parser.parse_args(argv)
    args.service = re.sub(r"\.service$", "", args.service)
    if not NAME_RE.match(args.service):
        parser.error("--service must be a unit name of letters, digits, _ and - (templates and instances are not converted)")
    if not USER_RE.match(args.deploy_user) or args.deploy_user == "root":
        parser.error("--deploy-user must be a user name (lower-case letters, digits, _ and -), not root")
    if args.health_path and not HEALTH_RE.match(args.health_path):
        parser.error("--health-path must be a path starting with /")
    if args.release_id and not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", args.release_id):
        parser.error("--release-id must be letters, digits, . _ - (starting with a letter or digit)")
    for path in args.shared:
        if not SHARED_RE.match(path) or any(part in ("", ".", "..") for part in path.split("/")):
            parser.error(f"--shared {path}: a relative path inside the app directory, without . or .. parts")
    return args


class AlreadyDone(Exception):
    """Nothing to convert."""


def already(args: argparse.Namespace, j: Journal) -> Target | None:
    """The target when this unit was converted by adopt and still is; raises AlreadyDone for the action's own layout."""
    if j.load() and j.data.get("status") == "applied" and os.path.exists(j.data.get("dropin", {}).get("path", "")):
        return target_of(j)
    props = show(f"{args.service}.service", ["ActiveState"])
    if props.get("ActiveState") == "active":
        unit = read_unit(args.service)
        _, argv = split_exec((service_list(unit.entries, "ExecStart") or [""])[-1])
        if any(re.match(r"^(--chdir=)?/.+/current/?$", w) for w in argv):
            raise AlreadyDone(f"{unit.service} already runs Gunicorn with --chdir .../current: the action's layout. Nothing to convert; run the action with mode: check")
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        note("run as root (sudo ./adopt.sh ...)")
        return 2
    j = Journal(args.service)
    try:
        if args.undo:
            return undo(j)
        done = already(args, j)
        if done:
            note(f"{args.service}.service was converted by adopt on {j.data.get('time')} ({done.release_path}); nothing to do (--undo puts it back)")
            if args.apply:
                run_check(done, args.check_with)
                print_snippet(done)
            return 0
        if run(["systemctl", "is-active", "--quiet", f"{STAND_IN_PREFIX}{args.service}.service"], check=False).returncode == 0:
            raise Refused(f"the stand-in {STAND_IN_PREFIX}{args.service} of an interrupted run is active", f"see {j.file}; when {args.service} serves again, systemctl stop {STAND_IN_PREFIX}{args.service}")
        plan = make_plan(args, survey(args))
        print_plan(plan)
        if not args.apply:
            note("nothing was changed. Run again with --apply to convert the server.")
            return 0
        apply(plan, j)
        target = target_of(j)
        clean = run_check(target, args.check_with)
        print_snippet(target)
        return 0 if clean is not False else 1
    except AlreadyDone as done:
        note(str(done))
        return 0
    except Refused as refused:
        note(f"refused: {refused.reason}" + (f"\n  fix: {refused.fix}" if refused.fix else "") + "\n  Nothing was changed.")
        return 3
    except Failed as failed:
        note(f"failed: {failed}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
