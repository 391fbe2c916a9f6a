# The small Python program the action runs on the server for the checks that
# would be fragile as shell text. It reaches the server as program text:
#     python3 -c "$(cat remote-helper.py)" <command> args...
# (the bundle carries this file as a string; see remote-helper.ts). Python is
# always there on a Flask host; only the standard library is used. Values of an
# EnvironmentFile are printed by one command only, envvalues, which the action
# reads to scrub them from everything it prints; the others print names (and,
# for gunicornenv, the two Gunicorn variables).
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

def env_spec(arg):
    """What environment to load: "-" (none), one EnvironmentFile's path, or a JSON object
    {"set": ["NAME=value", ...], "files": [{"path": P, "optional": bool}, ...]}: the unit's
    Environment= assignments, then its EnvironmentFiles in order ("-" prefixed: optional)."""
    if arg == "-":
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
    `names` the environment leaves unset or empty. Prints names and line numbers, never a value."""
    env, files = environment_of(arg)
    exists = all(f["exists"] for f in files if not f["optional"])
    readable = all(f["readable"] for f in files if f["exists"])
    # a file that is missing or cannot be read may set them: nothing is called missing then
    known = exists and readable
    print(json.dumps({
        "exists": exists,
        "readable": readable,
        "files": files,
        "missing": [n for n in names if n not in env] if known else [],
        "empty": [n for n in names if n in env and env[n] == ""],
        "count": len(env),
    }))

def cmd_envvalues(arg):
    """The service's environment, NAME -> value, for the action to scrub the values from
    everything it prints (they are never printed: the runner keeps them in memory and
    registers them as masks). What cannot be read adds nothing."""
    env, _ = environment_of(arg)
    print(json.dumps(env))

def cmd_importcheck(envfile, directory, app):
    load_env(envfile)
    os.chdir(directory)
    sys.path.insert(0, directory)
    module_name, _, attr = app.partition(":")
    attr = attr or "application"
    started = time.monotonic()
    try:
        import importlib
        module = importlib.import_module(module_name)
        expr = attr.split("(", 1)[0]
        target = module
        for part in expr.split("."):
            target = getattr(target, part)
        if attr.endswith(")"):
            target = target()
        if not callable(target):
            raise TypeError("%s is not a WSGI callable" % app)
    except BaseException:
        traceback.print_exc()
        sys.exit(1)
    # The import time predicts how long a reload holds requests while new workers boot.
    print("ok %s from %s in %.2fs" % (app, getattr(module, "__file__", "?"), time.monotonic() - started))

def cmd_run(envfile, directory, *argv):
    load_env(envfile)
    os.chdir(directory)
    os.execvp(argv[0], list(argv))

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
    than stale_seconds is taken over. Prints {taken, stale, holder, age}."""
    fd = guarded(lockdir)
    try:
        print(json.dumps(lock_once(lockdir, owner_json, float(stale_seconds))))
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
            return json.load(fh)
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
        if holder_of(lockdir).get("token") == token:
            gone = "%s.released-%d" % (lockdir, os.getpid())
            os.rename(lockdir, gone)
            shutil.rmtree(gone, ignore_errors=True)
            print("released")
        else:
            print("not ours")
    finally:
        unguard(fd)

def cmd_touchlock(lockdir, token):
    """Marks the lock as alive (its mtime is its age) if it is still ours."""
    fd = guarded(lockdir)
    try:
        if holder_of(lockdir).get("token") == token:
            os.utime(lockdir, None)
            print("fresh")
        else:
            print("not ours")
    finally:
        unguard(fd)

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
        print("%s -> %s" % (inside, shared))

def cmd_access(request_json):
    """What the deploy user may do, in one round trip: sudo -n -l for each argv
    (never runs them), the full sudo listing, readable paths, program paths, groups."""
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
    print(json.dumps({
        "user": pwd.getpwuid(os.getuid()).pw_name, "uid": os.getuid(), "groups": sorted(set(groups)),
        "listing": run(["sudo", "-n", "-l"]),
        "sudo": [run(["sudo", "-n", "-l"] + argv) for argv in request.get("sudo", [])],
        "readable": {p: os.access(p, os.R_OK) for p in request.get("readable", [])},
        "which": {p: shutil.which(p, path=path) for p in request.get("which", [])},
    }))

def cmd_readglobs(*patterns):
    """Nginx include patterns expanded as Nginx does (a sorted glob, or the one path) and
    every file read: {pattern: [{path, text} | {path, error}]}. A directory that exists
    but cannot be listed is reported as an error, never taken for an empty one."""
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
    print(json.dumps(out))

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
        print(json.dumps({"readable": False}))
        return
    found["readable"] = True
    print(json.dumps(found))

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
    died or changed (`mainPid` 0: any), or `timeout` passed; then prints the `show`
    output, the `ps` output and (`pwdx`: its argv prefix) the new workers' directories,
    each after a line `marker`. The caller judges that snapshot; this only saves it the
    round trips of polling."""
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
    marker = spec["marker"]
    sys.stdout.write("%s\n%s\n%s\n%s\n%s\n%s\n" % (marker, shown.rstrip("\n"), marker, ps.rstrip("\n"), marker, dirs.rstrip("\n")))

def cmd_dbrevisions(envfile, directory, module, marker):
    """Flask-Migrate's current and heads commands (`flask --app MODULE db ...`) in one
    process, so the app is imported once: each command's output after a line `marker`. Prints `no-migrations`
    alone when the release has no migrations/ directory. Any failure exits non-zero."""
    load_env(envfile)
    os.chdir(directory)
    sys.path.insert(0, directory)
    if not os.path.isdir("migrations"):
        print("no-migrations")
        return
    from flask.cli import cli
    for command in ("current", "heads"):
        # Alembic keeps the sys.stdout it first saw: the outputs are told apart by the markers.
        sys.stdout.write("%s\n" % marker)
        sys.stdout.flush()
        cli.main(args=["--app", module, "db", command], prog_name="flask", standalone_mode=False)
        sys.stdout.flush()

COMMANDS = {"envcheck": cmd_envcheck, "envvalues": cmd_envvalues, "importcheck": cmd_importcheck, "run": cmd_run,
            "lock": cmd_lock, "unlock": cmd_unlock, "touchlock": cmd_touchlock,
            "gunicornenv": cmd_gunicornenv,
            "readglobs": cmd_readglobs,
            "linkshared": cmd_linkshared, "access": cmd_access,
            "watchworkers": cmd_watchworkers, "dbrevisions": cmd_dbrevisions}

def main(argv):
    if not argv or argv[0] not in COMMANDS:
        sys.exit("remote-helper: unknown command %r (known: %s)" % (argv[0] if argv else "", ", ".join(sorted(COMMANDS))))
    COMMANDS[argv[0]](*argv[1:])

if __name__ == "__main__":
    main(sys.argv[1:])
