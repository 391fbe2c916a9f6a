# The small Python program the action runs on the server for the checks that
# would be fragile as shell text. It reaches the server as program text:
#     python3 -c "$(cat remote-helper.py)" <command> args...
# (the bundle carries this file as a string; helper-client.ts builds the argv
# and checks the answer). Python is always there on a Flask host; only the
# standard library is used, on Python 3.11 and later.
#
# The protocol: every command prints exactly one JSON object on stdout and
# nothing else, exit status 0; a command that fails prints {"error": {"type",
# "message"}} and exits 1 (2 for an unknown command). Whatever else is printed
# (the app while it is imported, Alembic, pip, a traceback) goes to stderr. The
# exceptions are `run` and `hook`, which are not questions but launchers: they
# exec a program, whose output and exit status are the program's own.
#
# Values of an EnvironmentFile are answered by one command only, envvalues,
# which the action reads to scrub them from everything it prints; the others
# answer names (and, for gunicornenv, the two Gunicorn variables).
#
# Under -c, __name__ is "__main__" as well, so the dispatch below runs there;
# tests import the file as a module and call the functions directly.

import json, os, shutil, sys, time, traceback

def parse_env(path):
    """systemd EnvironmentFile syntax: KEY=VALUE lines, # or ; comments, quotes, backslash-newline."""
    env, errors = {}, []
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().split("\n")
    i = 0
    while i < len(lines):
        number, line = i + 1, lines[i]
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + lines[i]
        i += 1
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("export "):
            s = s[7:].lstrip()
        key, sep, value = s.partition("=")
        key = key.strip()
        if not sep or not key or not (key[0].isalpha() or key[0] == "_") or not all(c.isalnum() or c == "_" for c in key):
            errors.append(number)
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key] = value
    return env, errors

# The first argument of envcheck, envvalues, importcheck, dbrevisions and run: the unit's
# environment. NO_ENV when it has none, the path of one EnvironmentFile, or a JSON object
# {"set": ["NAME=value", ...], "files": [{"path": P, "optional": bool}, ...]}: the unit's
# Environment= assignments, then its EnvironmentFiles in order ("-" prefixed in the unit:
# optional), as systemd builds the environment. UNREADABLE_ENV before the JSON object: an
# EnvironmentFile of it cannot be read by the deploy user, so what is loaded (the
# assignments, the files it may read) is not the whole environment; alone, nothing is loaded.
NO_ENV, UNREADABLE_ENV = "-", "?"

def partial_env(arg):
    """Whether the environment argument says an EnvironmentFile of it cannot be read."""
    return arg.startswith(UNREADABLE_ENV)

def env_spec(arg):
    """(assignments, [(path, optional)]) of an environment argument (see above)."""
    if partial_env(arg):
        arg = arg[len(UNREADABLE_ENV):] or NO_ENV
    if arg == NO_ENV:
        return [], []
    if arg.startswith("{"):
        spec = json.loads(arg)
        files = [(f["path"], bool(f.get("optional"))) for f in spec.get("files", [])]
        return list(spec.get("set", [])), files
    return [], [(arg, False)]

def environment_of(arg):
    """The environment as systemd builds it: Environment= first, then each EnvironmentFile
    in order, a later value winning; a file that is missing or unreadable adds nothing.
    Returns it with a report per file (path, optional, exists, readable, errors)."""
    assignments, files = env_spec(arg)
    env = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if sep:
            env[key] = value
    report = []
    for path, optional in files:
        entry = {"path": path, "optional": optional, "exists": os.path.exists(path), "readable": False, "errors": []}
        if entry["exists"]:
            try:
                values, errors = parse_env(path)
                env.update(values)
                entry.update(readable=True, errors=errors)
            except OSError:
                pass
        report.append(entry)
    return env, report

def load_env(arg):
    env, _ = environment_of(arg)
    os.environ.update(env)

def cmd_envcheck(arg, *names):
    """Whether every EnvironmentFile that must exist does and can be read, and which of
    `names` the environment leaves unset or empty. Answers names and line numbers, never a value."""
    env, files = environment_of(arg)
    exists = all(f["exists"] for f in files if not f["optional"])
    readable = all(f["readable"] for f in files if f["exists"])
    # a file that is missing or cannot be read may set them: nothing is called missing then
    known = exists and readable
    return {
        "exists": exists,
        "readable": readable,
        "files": files,
        "missing": [n for n in names if n not in env] if known else [],
        "empty": [n for n in names if n in env and env[n] == ""],
        "count": len(env),
    }

def cmd_envvalues(arg):
    """The service's environment, {"values": {NAME: value}}, for the action to scrub the
    values from everything it prints (they are never printed: the runner keeps them in
    memory and registers them as masks). What cannot be read adds nothing."""
    env, _ = environment_of(arg)
    return {"values": env}

# --- the import check

class Release:
    """Paths inside the release directory, as the import check judges them."""

    def __init__(self, directory):
        self.root = os.path.realpath(directory)
        self.known = {}

    def holds(self, path):
        """Whether `path` (relative: to the release, where the check runs) lies inside the release."""
        if not path or path.startswith("<"):
            return False
        if path not in self.known:
            full = os.path.realpath(os.path.join(self.root, path))
            self.known[path] = full == self.root or full.startswith(self.root + os.sep)
        return self.known[path]

    def relative(self, path):
        return os.path.relpath(os.path.realpath(os.path.join(self.root, path)), self.root)

def watch_environment(release):
    """Records the environment variables the release's own code reads from now on: a read
    counts when, going up the stack from it, a frame of a file inside the release comes
    before the import machinery (a library that reads os.environ while it is being
    imported does so by itself; one that reads it because the release called it does so
    for the release). Returns the list the reads are added to: {name, set}; None when
    os.environ cannot be watched (then no failure counts as independent of it)."""
    reads = []
    base = type(os.environ)

    def note(frame, key, present):
        while frame is not None:
            name = frame.f_code.co_filename
            if name.startswith("<frozen importlib"):
                return
            if release.holds(name):
                if all(r["name"] != key for r in reads):
                    reads.append({"name": key, "set": present})
                return
            frame = frame.f_back

    class Watched(base):
        def __getitem__(self, key):
            try:
                value = base.__getitem__(self, key)
            except KeyError:
                note(sys._getframe(1), key, False)
                raise
            note(sys._getframe(1), key, True)
            return value

    try:
        os.environ.__class__ = Watched
    except TypeError:
        return None
    return reads

class AppNotFound(Exception):
    """The module imported, but the app it names is missing or not a WSGI callable."""

def load_app(app):
    """Imports the module of `module:attr` (attr `application` when not given) and finds the app."""
    import importlib
    module_name, _, attr = app.partition(":")
    attr = attr or "application"
    module = importlib.import_module(module_name)
    target = module
    for part in attr.split("(", 1)[0].split("."):
        if not hasattr(target, part):
            raise AppNotFound("%s has no attribute %s" % (module_name, attr))
        target = getattr(target, part)
    if attr.endswith(")"):
        target = target()
    if not callable(target):
        raise AppNotFound("%s is not a WSGI callable" % app)
    return module

def where(error, release):
    """The innermost place in the release's files the error came from: (file, line)."""
    if isinstance(error, SyntaxError) and release.holds(error.filename):
        return release.relative(error.filename), error.lineno
    found = (None, None)
    for frame in traceback.extract_tb(error.__traceback__):
        if release.holds(frame.filename):
            found = (release.relative(frame.filename), frame.lineno)
    return found

def release_traceback(error):
    """The traceback from the first frame that is not this helper's."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == load_app.__code__.co_filename:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb))

def independent_cause(error, release):
    """Why `error` fails the same with any environment, or None when a variable might change
    it. Only what no variable can change: a file of the release that does not compile, a
    module that is not installed (or a name it lacks), a file missing from the release, the
    app missing from its module. Everything else (KeyError, RuntimeError, a refused
    connection, a permission the service user may have) may depend on the environment."""
    if isinstance(error, SyntaxError) and release.holds(error.filename):
        return "%s does not compile (line %s)" % (release.relative(error.filename), error.lineno)
    if isinstance(error, ModuleNotFoundError) and error.name:
        return "no module named %s is installed for %s" % (error.name, sys.executable)
    if type(error) is ImportError and str(error).startswith("cannot import name"):
        return str(error)
    if isinstance(error, FileNotFoundError) and error.filename and release.holds(str(error.filename)):
        return "%s is missing from the release" % release.relative(str(error.filename))
    if isinstance(error, AppNotFound):
        return str(error)
    return None

MACHINERY = ("sys.path", "sys.modules", "__path__", "importlib", "__import__", "meta_path",
             "path_hooks", "addsitedir", "pkgutil", "exec(", "runpy")

def release_module(root, name):
    """The file of module `name` inside the release: (path, is_package), None when the release
    does not hold it, or ("", True) for a directory without __init__.py (a namespace package)."""
    base = os.path.join(root, *name.split("."))
    if os.path.isfile(base + ".py"):
        return base + ".py", False
    if os.path.isfile(os.path.join(base, "__init__.py")):
        return os.path.join(base, "__init__.py"), True
    return ("", True) if os.path.isdir(base) else None

def plain_package(root, name):
    """A package of the release whose submodules can only be its files: it has an
    __init__.py (a namespace package may continue elsewhere on sys.path) that does not
    touch the import machinery (sys.modules, __path__...)."""
    found = release_module(root, name)
    if not found or not found[0] or not found[1]:
        return False
    with open(found[0], "rb") as fh:
        text = fh.read().decode("utf-8", "replace")
    return not any(word in text for word in MACHINERY)

def unconditional_imports(tree, package):
    """(module, names) of the import statements a module runs whatever happens: at its top
    level, outside if/try/with/def/class. Relative imports are resolved against `package`."""
    import ast
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            if node.level:
                parts = package.split(".") if package else []
                if node.level - 1 > len(parts):
                    continue
                base = parts[:len(parts) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            if module:
                yield module, [a.name for a in node.names if a.name != "*"]

def static_cause(root, module_name):
    """What certainly fails, found without running anything: following the unconditional
    imports from the app's module through the release's own modules, a module that does
    not compile, or one that neither the release nor the interpreter has. A module whose
    text touches the import machinery (sys.path, importlib...) is compiled but its imports
    are not judged."""
    import ast, importlib.util
    queue, seen = [module_name], set()
    while queue:
        name = queue.pop(0)
        found = release_module(root, name)
        if not found or not found[0] or found[0] in seen:
            continue
        path, is_package = found
        seen.add(path)
        with open(path, "rb") as fh:
            source = fh.read()
        try:
            compile(source, path, "exec", dont_inherit=True)
        except SyntaxError as error:
            return "%s does not compile (line %s): %s" % (os.path.relpath(path, root), error.lineno, error.msg)
        text = source.decode("utf-8", "replace")
        if any(word in text for word in MACHINERY):
            continue
        package = name if is_package else name.rpartition(".")[0]
        for module, names in unconditional_imports(ast.parse(source, path), package):
            top = module.split(".")[0]
            if release_module(root, top) is not None:
                parts = module.split(".")
                for i in range(1, len(parts) + 1):
                    part = ".".join(parts[:i])
                    if release_module(root, part) is None:
                        if i > 1 and not plain_package(root, ".".join(parts[:i - 1])):
                            break
                        return "%s imports %s, which the release does not hold" % (os.path.relpath(path, root), module)
                    queue.append(part)
                queue.extend("%s.%s" % (module, n) for n in names)
            elif top not in sys.modules and importlib.util.find_spec(top) is None:
                return "%s imports %s, which is not installed for %s" % (os.path.relpath(path, root), top, sys.executable)
    return None

def cmd_importcheck(envfile, directory, app):
    """Imports the WSGI app of the release. With the unit's EnvironmentFile (or none), any
    failure is the release's. With an EnvironmentFile the deploy user cannot read
    (envfile "?..."), the import runs without it (with the Environment= assignments and the
    files that can be read) and the failure is judged: `independent`
    names a cause no variable can change, found while importing (when the release's code
    had read no variable before it failed) or from the source (static_cause); null when
    the failure may depend on the environment. `reads`: the variables the release read."""
    partial = partial_env(envfile)
    load_env(envfile)
    os.chdir(directory)
    sys.path.insert(0, directory)
    release = Release(directory)
    reads = watch_environment(release) if partial else []
    started = time.monotonic()
    try:
        module = load_app(app)
    except BaseException as error:
        independent = None
        if partial:
            independent = None if reads is None or reads else independent_cause(error, release)
            if independent is None:
                try:
                    independent = static_cause(release.root, app.partition(":")[0])
                except Exception:  # what cannot be judged is not certain
                    independent = None
        file, line = where(error, release)
        return {
            "ok": False,
            "failure": {"type": type(error).__name__, "message": str(error)[:2000], "file": file, "line": line},
            "traceback": release_traceback(error)[-8000:],
            "independent": independent,
            "reads": reads or [],
        }
    # The import time predicts how long a reload holds requests while new workers boot.
    return {"ok": True, "file": getattr(module, "__file__", None), "seconds": round(time.monotonic() - started, 3),
            "reads": reads or []}

def cmd_run(envfile, directory, *argv):
    load_env(envfile)
    os.chdir(directory)
    os.execvp(argv[0], list(argv))

# --- the deploy lock

def guarded(lockdir):
    """An exclusive flock on the lock's parent directory (release-path), held while one
    lock command reads and changes the lock, so that two of them never interleave (two
    waiters taking over one stale lock). Released when the command ends, also when it
    is killed. Where the filesystem cannot flock a directory, returns None: the token
    checks below still tell a lost race."""
    import fcntl
    try:
        fd = os.open(os.path.dirname(os.path.abspath(lockdir)), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        os.close(fd)
        return None
    return fd

def unguard(fd):
    if fd is not None:
        os.close(fd)

def cmd_lock(lockdir, owner_json, stale_seconds):
    """Takes the lock: a directory holding owner.json, renamed into place in one
    atomic step (so nobody ever sees a lock without its owner). A lock older
    than stale_seconds is taken over. Answers {taken, stale, holder, age}."""
    fd = guarded(lockdir)
    try:
        return lock_once(lockdir, owner_json, float(stale_seconds))
    finally:
        unguard(fd)

def lock_once(lockdir, owner_json, stale_seconds):
    token = json.loads(owner_json).get("token")
    took_over = None
    for _ in range(3):
        if take(lockdir, owner_json):
            # verified by its token after the rename: the lock in place is ours
            if holder_of(lockdir).get("token") != token:
                break
            info = took_over or {"holder": {}, "age": 0}
            return {"taken": True, "stale": took_over is not None, "holder": info["holder"], "age": info["age"]}
        age = age_of(lockdir)
        if age is None:
            continue
        if age > stale_seconds and took_over is None:
            taken_over = take_over(lockdir, stale_seconds)
            if taken_over is None:
                continue
            took_over = {"holder": taken_over, "age": int(age)}
            continue
        return {"taken": False, "stale": False, "holder": holder_of(lockdir), "age": int(age)}
    return {"taken": False, "stale": False, "holder": holder_of(lockdir), "age": int(age_of(lockdir) or 0)}

def age_of(directory):
    try:
        return time.time() - os.stat(directory).st_mtime
    except FileNotFoundError:
        return None

def take_over(lockdir, stale_seconds):
    """Moves a stale lock out of the way and returns its holder; None when what was moved
    is not the lock judged stale (another waiter took it over first): that one is put
    back, and nothing is taken."""
    previous = holder_of(lockdir)
    stale = "%s.stale-%d-%d" % (lockdir, int(time.time()), os.getpid())
    try:
        os.rename(lockdir, stale)
    except OSError:
        return None
    moved_age = age_of(stale)
    if holder_of(stale).get("token") != previous.get("token") or moved_age is None or moved_age <= stale_seconds:
        try:
            os.rename(stale, lockdir)
        except OSError:
            pass
        return None
    shutil.rmtree(stale, ignore_errors=True)
    return previous

def holder_of(directory):
    try:
        with open(os.path.join(directory, "owner.json"), encoding="utf-8") as fh:
            holder = json.load(fh)
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}

def take(lockdir, owner_json):
    """True when the lock was ours to take; rename() refuses an existing lock directory."""
    fresh = "%s.new-%d" % (lockdir, os.getpid())
    shutil.rmtree(fresh, ignore_errors=True)
    os.mkdir(fresh)
    with open(os.path.join(fresh, "owner.json"), "w", encoding="utf-8") as fh:
        fh.write(owner_json + "\n")
    try:
        if os.path.exists(lockdir):
            raise FileExistsError(lockdir)
        os.rename(fresh, lockdir)
        return True
    except OSError:
        shutil.rmtree(fresh, ignore_errors=True)
        return False

def cmd_unlock(lockdir, token):
    """Removes the lock only if it is ours: renamed away first, so it is never seen half-removed."""
    fd = guarded(lockdir)
    try:
        if holder_of(lockdir).get("token") != token:
            return {"released": False}
        gone = "%s.released-%d" % (lockdir, os.getpid())
        os.rename(lockdir, gone)
        shutil.rmtree(gone, ignore_errors=True)
        return {"released": True}
    finally:
        unguard(fd)

def cmd_touchlock(lockdir, token):
    """Marks the lock as alive (its mtime is its age) if it is still ours."""
    fd = guarded(lockdir)
    try:
        if holder_of(lockdir).get("token") != token:
            return {"fresh": False}
        os.utime(lockdir, None)
        return {"fresh": True}
    finally:
        unguard(fd)

# --- the release's files

def give_group(path, gid):
    """Gives a tree the release's group (what the service reads through), as far as allowed."""
    for where, dirs, files in os.walk(path):
        for name in [where] + [os.path.join(where, n) for n in dirs + files]:
            try:
                os.chown(name, -1, gid, follow_symlinks=False)
            except OSError:
                pass

def cmd_linkshared(root, release, *paths):
    """Links release/<p> to root/shared/<p>; seeds shared/<p> from the release the first time
    (with the release's group, which the service reads through)."""
    gid = os.stat(release).st_gid
    links = []
    for p in paths:
        shared = os.path.join(root, "shared", p)
        inside = os.path.join(release, p)
        os.makedirs(os.path.dirname(shared), exist_ok=True)
        if not os.path.lexists(shared):
            if os.path.isdir(inside) and not os.path.islink(inside):
                shutil.copytree(inside, shared, symlinks=True)
            else:
                os.makedirs(shared)
            give_group(shared, gid)
        if os.path.lexists(inside):
            if os.path.isdir(inside) and not os.path.islink(inside):
                shutil.rmtree(inside)
            else:
                os.unlink(inside)
        os.makedirs(os.path.dirname(inside), exist_ok=True)
        os.symlink(shared, inside)
        links.append({"path": inside, "target": shared})
    return {"links": links}

# --- what the deploy user may do, and what the host's configuration says

def proc_hidepid(mountinfo="/proc/self/mountinfo"):
    """The hidepid= value /proc is mounted with when it hides other users' processes from
    this user (hidepid=invisible or 2, noaccess or 1, ptraceable), else None: root and
    members of the mount's gid= group see every process."""
    hidepid, gid = None, None
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if "-" not in fields:
                    continue
                dash = fields.index("-")
                if len(fields) < dash + 4 or fields[4] != "/proc" or fields[dash + 1] != "proc":
                    continue
                options = dict(o.partition("=")[::2] for o in fields[dash + 3].split(","))
                # the last mount on /proc is the one seen
                hidepid, gid = options.get("hidepid"), options.get("gid")
    except OSError:
        return None
    if hidepid in (None, "", "0", "off") or os.getuid() == 0:
        return None
    if gid is not None and gid.isdigit() and int(gid) in os.getgroups() + [os.getgid()]:
        return None
    return hidepid

def cmd_access(request_json):
    """What the deploy user may do, in one round trip: sudo -n -l for each argv
    (never runs them), the full sudo listing, readable paths, program paths, groups,
    and whether /proc hides other users' processes (hidepid)."""
    import grp, pwd, subprocess
    request = json.loads(request_json)
    env = dict(os.environ, LC_ALL="C")
    def run(argv):
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10, env=env)
            return {"rc": done.returncode, "out": done.stdout + done.stderr}
        except (OSError, subprocess.TimeoutExpired) as error:
            return {"rc": 127, "out": str(error)}
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin"
    groups = [g.gr_name for g in grp.getgrall() if pwd.getpwuid(os.getuid()).pw_name in g.gr_mem]
    groups.append(grp.getgrgid(os.getgid()).gr_name)
    return {
        "user": pwd.getpwuid(os.getuid()).pw_name, "uid": os.getuid(), "groups": sorted(set(groups)),
        "listing": run(["sudo", "-n", "-l"]),
        "sudo": [run(["sudo", "-n", "-l"] + argv) for argv in request.get("sudo", [])],
        "readable": {p: os.access(p, os.R_OK) for p in request.get("readable", [])},
        "which": {p: shutil.which(p, path=path) for p in request.get("which", [])},
        "hidepid": proc_hidepid(),
    }

def cmd_readglobs(*patterns):
    """Nginx include patterns expanded as Nginx does (a sorted glob, or the one path) and
    every file read: {"files": {pattern: [{path, text} | {path, error}]}}. A directory that
    exists but cannot be listed is reported as an error, never taken for an empty one."""
    import glob
    limit = 4 << 20
    def read(path):
        try:
            with open(path, "rb") as fh:
                data = fh.read(limit + 1)
        except OSError as error:
            return {"path": path, "error": error.strerror or str(error)}
        if len(data) > limit:
            return {"path": path, "error": "larger than %d bytes" % limit}
        return {"path": path, "text": data.decode("utf-8", errors="replace")}
    out = {}
    for pattern in patterns:
        if not glob.has_magic(pattern):
            out[pattern] = [read(pattern)]
            continue
        parts = pattern.split("/")
        fixed = "/".join(parts[:next(i for i, p in enumerate(parts) if glob.has_magic(p))]) or "/"
        if os.path.isdir(fixed) and not os.access(fixed, os.R_OK | os.X_OK):
            out[pattern] = [{"path": fixed, "error": "cannot list the directory"}]
            continue
        out[pattern] = [read(p) for p in sorted(glob.glob(pattern))]
    return {"files": out}

def cmd_gunicornenv(unit, *paths):
    """WEB_CONCURRENCY and GUNICORN_CMD_ARGS as the service gets them: the unit's
    Environment= (unit "-": not read), then its EnvironmentFiles in order, a later
    one winning. No other variable's value is ever printed. {"readable": false}
    when one cannot be read; a missing file is skipped."""
    import shlex, subprocess
    names = ("WEB_CONCURRENCY", "GUNICORN_CMD_ARGS")
    found = {}
    try:
        if unit != "-":
            shown = subprocess.run(["systemctl", "show", "-p", "Environment", "--value", unit],
                                   stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
            if shown.returncode != 0:
                raise OSError("systemctl show failed")
            for word in shlex.split(shown.stdout):
                key, sep, value = word.partition("=")
                if sep and key in names:
                    found[key] = value
        for path in paths:
            try:
                env, _ = parse_env(path)
            except FileNotFoundError:
                continue
            found.update((k, env[k]) for k in names if k in env)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {"readable": False, "values": {}}
    return {"readable": True, "values": found}

# --- the workers after a reload

def process_table(proc="/proc"):
    """{pid: (ppid, state)} of every process /proc shows (state "Z": a zombie)."""
    table = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(proc, name, "stat"), encoding="utf-8", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        table[int(name)] = (int(fields[1]), fields[0])
    return table

def new_leaves(table, main, old):
    """Live processes below `main` that have no children and are not in `old`: the workers,
    whether `main` is the Gunicorn master or a launcher above it."""
    live = {pid for pid, (_, state) in table.items() if state != "Z"}
    below, queue = set(), [main]
    while queue:
        parent = queue.pop()
        for pid, (ppid, _) in table.items():
            if ppid == parent and pid in live and pid not in below:
                below.add(pid)
                queue.append(pid)
    parents = {table[pid][0] for pid in below}
    return sorted(pid for pid in below if pid not in parents and pid not in old)

def show_state(output):
    """MainPID and ActiveState from `systemctl show` output."""
    fields = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    try:
        main = int(fields.get("MainPID", "0"))
    except ValueError:
        main = 0
    return main, fields.get("ActiveState", "")

def cmd_watchworkers(spec_json):
    """Waits on the host, polling every `interval` seconds, until the unit's master has
    replaced its workers (none of `old` alive, at least `workers` new ones), the master
    died or changed (`mainPid` 0: any), or `timeout` passed; then answers the `show`
    output, the `ps` output and (`pwdx`: its argv prefix) the new workers' directories:
    {show, ps, dirs}. The caller judges that snapshot; this only saves it the round trips
    of polling."""
    import subprocess
    spec = json.loads(spec_json)
    old = set(spec["old"])
    deadline = time.monotonic() + float(spec["timeout"])
    def run(argv):
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        return done.stdout
    shown, rounds = run(spec["show"]), 0
    while True:
        main, active = show_state(shown)
        if main <= 0 or active != "active" or (spec["mainPid"] and main != spec["mainPid"]):
            break
        table = process_table()
        if main not in table or table[main][1] == "Z":
            shown = run(spec["show"])
            break
        old_alive = any(pid in table and table[pid][1] != "Z" for pid in old)
        leaves = new_leaves(table, main, old)
        if (not old_alive and len(leaves) >= spec["workers"]) or time.monotonic() >= deadline:
            break
        time.sleep(float(spec["interval"]))
        rounds += 1
        # the master is watched through /proc; systemd's view is read again now and then
        if not spec["mainPid"] or rounds % 10 == 0:
            shown = run(spec["show"])
    ps = run(spec["ps"])
    main, _ = show_state(shown)
    leaves = new_leaves(process_table(), main, old) if main > 0 else []
    dirs = run(spec["pwdx"] + [str(p) for p in leaves]) if spec.get("pwdx") and leaves else ""
    return {"show": shown, "ps": ps, "dirs": dirs}

# --- migrations

def captured(function, limit=1 << 16):
    """Runs `function` with file descriptor 1 going to a temporary file, and returns what
    was written there (Alembic writes to the sys.stdout it saw first, so the descriptor is
    redirected, not sys.stdout)."""
    import tempfile
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            function()
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        return tmp.read(limit).decode("utf-8", errors="replace")

def cmd_dbrevisions(envfile, directory, module):
    """Flask-Migrate's current and heads commands (`flask --app MODULE db ...`) in one
    process, so the app is imported once: {"migrations": true, "current": text, "heads":
    text}, or {"migrations": false} when the release has no migrations/ directory. Any
    failure is an error."""
    load_env(envfile)
    os.chdir(directory)
    sys.path.insert(0, directory)
    if not os.path.isdir("migrations"):
        return {"migrations": False}
    from flask.cli import cli
    out = {"migrations": True}
    for command in ("current", "heads"):
        out[command] = captured(
            lambda: cli.main(args=["--app", module, "db", command], prog_name="flask", standalone_mode=False))
    return out

def cmd_hook(spec_json):
    """Runs the user's own hook command (`sh -c COMMAND`) as the unit's code would see the
    release: the unit's environment (`environment`, an environment argument as above;
    a missing file skipped, one that exists but cannot be read refused before the command),
    `bin` first on PATH, the release directory as working directory, and `env` set."""
    spec = json.loads(spec_json)
    env, report = environment_of(spec.get("environment", NO_ENV))
    unreadable = [f["path"] for f in report if f["exists"] and not f["readable"]]
    if unreadable:
        sys.exit("cannot read the EnvironmentFile %s: the hook would run without it" % ", ".join(unreadable))
    os.environ.update(env)
    if spec.get("bin"):
        os.environ["PATH"] = spec["bin"] + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")
        os.environ["VIRTUAL_ENV"] = os.path.dirname(spec["bin"])
    os.environ.update(spec.get("env", {}))
    os.chdir(spec["dir"])
    sys.stdout.flush()
    os.execvp("sh", ["sh", "-c", spec["command"]])

def read_pyvenv(venv):
    """pyvenv.cfg of a venv as a dict, or None."""
    try:
        with open(os.path.join(venv, "pyvenv.cfg"), encoding="utf-8") as fh:
            return {k.strip(): v.strip() for k, _, v in (l.partition("=") for l in fh) if k.strip()}
    except OSError:
        return None

def cmd_venvbuild(spec_json):
    """The environment of one release: a venv at root/venvs/KEY, KEY hashing the base
    Python's version, its system-site-packages setting, the pip arguments and the
    release's requirements.txt. Made like the first model venv that exists (its Python,
    its system-site-packages), pip-installed, frozen into .zdd-freeze.txt and marked
    complete last; a complete one is reused, a partial one (a stopped build) rebuilt.
    The release links it as .venv. Runs under the deploy lock. pip's output goes to stderr."""
    import hashlib, subprocess
    spec = json.loads(spec_json)
    release = spec["release"]
    cfg = next((c for c in map(read_pyvenv, spec["models"]) if c), None) or {}
    base = cfg.get("executable") or (os.path.join(cfg["home"], "python3") if cfg.get("home") else "python3")
    system_site = cfg.get("include-system-site-packages", "false").lower() == "true"
    version = subprocess.run([base, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    requirements = os.path.join(release, "requirements.txt")
    try:
        with open(requirements, "rb") as fh:
            wanted = fh.read()
    except FileNotFoundError:
        wanted = None
    digest = hashlib.sha256()
    for part in ("zdd-venv-1", version, str(system_site), "\0".join(spec["pipArgs"])):
        digest.update(part.encode() + b"\0")
    digest.update(wanted if wanted is not None else b"(none)")
    key = digest.hexdigest()[:16]
    venvs = os.path.join(spec["root"], "venvs")
    venv = os.path.join(venvs, key)
    built = not os.path.exists(os.path.join(venv, ".zdd-complete"))
    started = time.monotonic()
    if built:
        os.makedirs(venvs, exist_ok=True)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([base, "-m", "venv"] + (["--system-site-packages"] if system_site else []) + [venv], check=True,
                       stdout=sys.stderr)
        python = os.path.join(venv, "bin", "python")
        if wanted is not None:
            subprocess.run([python, "-m", "pip", "install", "--disable-pip-version-check", "-r", requirements]
                           + spec["pipArgs"], check=True, stdout=sys.stderr)
        frozen = subprocess.run([python, "-m", "pip", "freeze", "--local", "--disable-pip-version-check"],
                                capture_output=True, text=True, check=True).stdout
        with open(os.path.join(venv, ".zdd-freeze.txt"), "w", encoding="utf-8") as fh:
            fh.write(frozen)
        open(os.path.join(venv, ".zdd-complete"), "w").close()
    link = os.path.join(release, ".venv")
    if os.path.lexists(link) and not os.path.islink(link):
        raise ValueError("%s exists in the release and is not a link: leave .venv out of the release" % link)
    fresh = link + ".new"
    if os.path.lexists(fresh):
        os.unlink(fresh)
    os.symlink(os.path.relpath(venv, release), fresh)
    os.rename(fresh, link)
    shutil.copyfile(os.path.join(venv, ".zdd-freeze.txt"), os.path.join(release, ".zdd-freeze.txt"))
    return {"key": key, "venv": venv, "built": built, "seconds": round(time.monotonic() - started, 1),
            "python": base, "version": version, "systemSite": system_site}

# Launchers answer no JSON: they exec a program whose output and exit status are its own.
LAUNCHERS = {"run": cmd_run, "hook": cmd_hook}

COMMANDS = {"envcheck": cmd_envcheck, "envvalues": cmd_envvalues, "importcheck": cmd_importcheck,
            "lock": cmd_lock, "unlock": cmd_unlock, "touchlock": cmd_touchlock,
            "gunicornenv": cmd_gunicornenv,
            "readglobs": cmd_readglobs,
            "linkshared": cmd_linkshared, "access": cmd_access,
            "watchworkers": cmd_watchworkers, "dbrevisions": cmd_dbrevisions,
            "venvbuild": cmd_venvbuild}

def failure(error):
    return {"error": {"type": type(error).__name__, "message": str(error)[:2000]}}

def main(argv):
    name = argv[0] if argv else ""
    if name in LAUNCHERS:
        LAUNCHERS[name](*argv[1:])
        return
    # The answer goes to the real stdout; everything else printed from now on to stderr.
    sys.stdout.flush()
    answer = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    status = 0
    if name not in COMMANDS:
        result, status = failure(LookupError("unknown command %r (known: %s)" % (name, ", ".join(sorted(list(COMMANDS) + list(LAUNCHERS)))))), 2
    else:
        try:
            result = COMMANDS[name](*argv[1:])
        except BaseException as error:  # the one answer says what went wrong
            traceback.print_exc()
            result, status = failure(error), 1
    answer.write(json.dumps(result) + "\n")
    answer.flush()
    sys.stdout.flush()
    sys.exit(status)

if __name__ == "__main__":
    main(sys.argv[1:])
