# Unit tests of the remote Python helper (src/host/remote-helper.py), standard
# library only. The helper is loaded from its file as a module for the function
# tests, and run as `python3 -c TEXT command args` (the way it reaches a server)
# for the protocol (one JSON object on stdout) and the commands that change the
# process (its environment, its directory) or exec.
#
# Run: python3 -m unittest -v discover -s __tests__/python
# (the unit Jest suite runs them through __tests__/unit/remote-helper-python.test.ts).

import contextlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from unittest import mock

sys.dont_write_bytecode = True

HELPER_PATH = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "host", "remote-helper.py")
)
SECRET = "s3cr3t-value-that-must-stay-on-the-host"


def load_helper():
    spec = importlib.util.spec_from_file_location("remote_helper", HELPER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helper = load_helper()


def helper_text():
    with open(HELPER_PATH, encoding="utf-8") as fh:
        return fh.read()


def run_as_c(*args, env=None):
    """Runs the helper the way the action does: python3 -c TEXT command args."""
    return subprocess.run(
        [sys.executable, "-c", helper_text()] + list(args),
        capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
    )


def answer_of(done):
    """The one JSON object a command run with run_as_c printed, checking it is all of stdout."""
    lines = done.stdout.splitlines()
    assert len(lines) == 1, "expected one line of JSON on stdout, got %r" % done.stdout
    return json.loads(lines[0])


class TempDirTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="zdd-helper-test-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def write(self, name, text, mode="w"):
        path = self.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, mode) as fh:
            fh.write(text)
        return path


class LoadingTest(TempDirTest):
    def test_importing_the_helper_runs_no_command(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), mock.patch.object(sys, "argv", ["x", "envcheck", "/nonexistent"]):
            module = load_helper()
        self.assertEqual(out.getvalue(), "")
        self.assertIn("envcheck", module.COMMANDS)

    def test_every_command_the_action_calls_is_dispatched(self):
        expected = {"envcheck", "envvalues", "importcheck", "run", "lock", "unlock", "touchlock",
                    "linkshared", "access", "readglobs", "gunicornenv", "watchworkers",
                    "dbrevisions", "hook", "venvbuild"}
        self.assertEqual(set(helper.COMMANDS) | set(helper.LAUNCHERS), expected)

    def test_runs_a_command_under_dash_c_answering_one_json_object(self):
        done = run_as_c("envcheck", self.path("missing.env"), "A")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(answer_of(done)["exists"], False)

    def test_an_unknown_command_answers_an_error_naming_the_known_ones(self):
        done = run_as_c("nosuchcommand")
        self.assertEqual(done.returncode, 2)
        error = answer_of(done)["error"]
        self.assertIn("unknown command 'nosuchcommand'", error["message"])
        self.assertIn("envcheck", error["message"])

    def test_no_command_answers_an_error(self):
        done = run_as_c()
        self.assertEqual(done.returncode, 2)
        self.assertIn("unknown command", answer_of(done)["error"]["message"])

    def test_a_command_that_fails_answers_its_error_and_exits_1(self):
        done = run_as_c("lock", self.path("no", "such", "dir", "lock"), "{}", "60")
        self.assertEqual(done.returncode, 1)
        self.assertEqual(answer_of(done)["error"]["type"], "FileNotFoundError")
        self.assertIn("Traceback", done.stderr)

    def test_what_the_app_prints_while_imported_goes_to_stderr(self):
        self.write("code/noisy.py", "print('hello from the app')\ndef app(environ, start_response):\n    return []\n")
        done = run_as_c("importcheck", "-", self.path("code"), "noisy:app")
        self.assertEqual(answer_of(done)["ok"], True)
        self.assertIn("hello from the app", done.stderr)


class ParseEnvTest(TempDirTest):
    def parse(self, text):
        return helper.parse_env(self.write("app.env", text))

    def test_reads_key_value_lines_trimming_spaces(self):
        env, errors = self.parse("A=1\n  B = two words  \nURL=postgres://u@h/db?x=1\n")
        self.assertEqual(env, {"A": "1", "B": "two words", "URL": "postgres://u@h/db?x=1"})
        self.assertEqual(errors, [])

    def test_removes_matching_double_or_single_quotes(self):
        env, _ = self.parse("D=\"a b\"\nS='c # d'\nE=\"\"\n")
        self.assertEqual(env, {"D": "a b", "S": "c # d", "E": ""})

    def test_keeps_unmatched_quotes(self):
        env, _ = self.parse("M=\"open\nN='mixed\"\nQ=\"\n")
        self.assertEqual(env, {"M": "\"open", "N": "'mixed\"", "Q": "\""})

    def test_skips_hash_and_semicolon_comments_and_blank_lines(self):
        env, errors = self.parse("# comment\n; other comment\n\n   # indented\nA=1\n\n")
        self.assertEqual(env, {"A": "1"})
        self.assertEqual(errors, [])

    def test_accepts_an_export_prefix(self):
        env, errors = self.parse("export A=1\nexport   B=2\n")
        self.assertEqual(env, {"A": "1", "B": "2"})
        self.assertEqual(errors, [])

    def test_joins_backslash_continuation_lines(self):
        env, errors = self.parse("LONG=one \\\ntwo \\\nthree\nNEXT=4\n")
        self.assertEqual(env, {"LONG": "one two three", "NEXT": "4"})
        self.assertEqual(errors, [])

    def test_reports_bad_lines_by_number_and_keeps_the_good_ones(self):
        text = "A=1\nnot an assignment\n1ABC=x\nBAD-NAME=x\n=novalue\nB=2\n"
        env, errors = self.parse(text)
        self.assertEqual(env, {"A": "1", "B": "2"})
        self.assertEqual(errors, [2, 3, 4, 5])

    def test_a_bad_continued_line_is_reported_at_its_first_line(self):
        env, errors = self.parse("A=1\nbroken \\\nstill broken\nB=2\n")
        self.assertEqual(env, {"A": "1", "B": "2"})
        self.assertEqual(errors, [2])

    def test_a_later_assignment_wins(self):
        env, _ = self.parse("A=1\nA=2\n")
        self.assertEqual(env, {"A": "2"})

    def test_a_missing_file_raises(self):
        with self.assertRaises(FileNotFoundError):
            helper.parse_env(self.path("missing.env"))


class EnvCheckTest(TempDirTest):
    def check(self, path, *names):
        out = helper.cmd_envcheck(path, *names)
        return json.dumps(out), out

    def spec(self, files, assignments=()):
        return json.dumps({"set": list(assignments), "files": [{"path": p, "optional": o} for p, o in files]})

    def test_reports_missing_and_empty_names_and_counts(self):
        path = self.write("app.env", "SECRET_KEY=%s\nEMPTY=\nQUOTED_EMPTY=''\nbad line\n" % SECRET)
        _, out = self.check(path, "SECRET_KEY", "EMPTY", "QUOTED_EMPTY", "ABSENT")
        self.assertEqual(out, {
            "exists": True, "readable": True,
            "files": [{"path": path, "optional": False, "exists": True, "readable": True, "errors": [4]}],
            "missing": ["ABSENT"], "empty": ["EMPTY", "QUOTED_EMPTY"], "count": 3,
        })

    def test_never_prints_a_value(self):
        path = self.write("app.env", "SECRET_KEY=%s\nDATABASE_URL='%s'\n" % (SECRET, SECRET))
        raw, _ = self.check(self.spec([(path, False)], ["TOKEN=%s" % SECRET]), "SECRET_KEY", "DATABASE_URL")
        self.assertNotIn(SECRET, raw)
        done = run_as_c("envcheck", path, "SECRET_KEY", "OTHER")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertNotIn(SECRET, done.stdout + done.stderr)

    def test_a_missing_file_is_reported_not_raised(self):
        _, out = self.check(self.path("missing.env"), "A")
        self.assertEqual(out["exists"], False)
        self.assertEqual(out["files"], [{"path": self.path("missing.env"), "optional": False,
                                         "exists": False, "readable": False, "errors": []}])
        self.assertEqual(out["missing"], [])

    # Issue 18: only one of the unit's EnvironmentFile= lines was read.
    def test_every_file_is_read_in_order_after_the_assignments_a_later_value_winning(self):
        first = self.write("a.env", "DATABASE_URL=postgresql://one\nONLY_A=1\n")
        second = self.write("b.env", "DATABASE_URL=postgresql://two\nEMPTY=\n")
        spec = self.spec([(first, False), (self.path("missing.env"), True), (second, False)],
                         ["ONLY_SET=x", "DATABASE_URL=from-environment"])
        env, _ = helper.environment_of(spec)
        self.assertEqual(env, {"ONLY_SET": "x", "DATABASE_URL": "postgresql://two", "ONLY_A": "1", "EMPTY": ""})
        _, out = self.check(spec, "DATABASE_URL", "ONLY_A", "ONLY_SET", "EMPTY")
        self.assertEqual((out["exists"], out["readable"], out["missing"], out["empty"], out["count"]),
                         (True, True, [], ["EMPTY"], 4))
        self.assertEqual([(f["exists"], f["optional"]) for f in out["files"]], [(True, False), (False, True), (True, False)])

    def test_envvalues_gives_the_environment_to_scrub_and_skips_what_it_cannot_read(self):
        path = self.write("app.env", "DATABASE_URL=%s\n" % SECRET)
        os.mkdir(self.path("dir.env"))
        spec = self.spec([(path, False), (self.path("dir.env"), False)], ["MODE=production"])
        out = helper.cmd_envvalues(spec)
        self.assertEqual(out, {"values": {"MODE": "production", "DATABASE_URL": SECRET}})

    def test_a_missing_file_that_is_not_optional_is_reported(self):
        spec = self.spec([(self.path("gone.env"), False)])
        _, out = self.check(spec)
        self.assertEqual((out["exists"], out["readable"]), (False, True))

    def test_an_unreadable_file_exists_but_is_not_readable(self):
        os.mkdir(self.path("a-directory.env"))
        _, out = self.check(self.path("a-directory.env"), "A")
        self.assertEqual(out["exists"], True)
        self.assertEqual(out["readable"], False)
        self.assertEqual(out["missing"], [])


class LockTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.lock = self.path("deploy.lock")

    def owner(self, token):
        return json.dumps({"token": token, "run": "run-" + token})

    def take(self, token, stale="600"):
        return helper.cmd_lock(self.lock, self.owner(token), stale)

    def leftovers(self):
        return sorted(name for name in os.listdir(self.dir) if name != "deploy.lock")

    def age_lock(self, seconds):
        then = time.time() - seconds
        os.utime(self.lock, (then, then))

    def test_takes_a_free_lock_and_records_its_owner(self):
        out = self.take("one")
        self.assertEqual(out, {"taken": True, "stale": False, "holder": {}, "age": 0})
        self.assertEqual(helper.holder_of(self.lock), {"token": "one", "run": "run-one"})
        self.assertEqual(self.leftovers(), [])

    def test_the_lock_appears_by_one_rename_with_its_owner_inside(self):
        renames = []
        real_rename = os.rename

        def watching_rename(src, dst):
            renames.append((src, dst, os.path.isfile(os.path.join(src, "owner.json")), os.path.exists(dst)))
            return real_rename(src, dst)

        with mock.patch.object(helper.os, "rename", watching_rename):
            self.take("one")
        self.assertEqual(len(renames), 1)
        src, dst, owner_inside, target_existed = renames[0]
        self.assertEqual(dst, self.lock)
        self.assertTrue(src.startswith(self.lock + ".new-"))
        self.assertTrue(owner_inside)
        self.assertFalse(target_existed)

    def test_refuses_a_lock_held_by_someone_else(self):
        self.take("one")
        self.age_lock(30)
        out = self.take("two")
        self.assertEqual(out["taken"], False)
        self.assertEqual(out["stale"], False)
        self.assertEqual(out["holder"], {"token": "one", "run": "run-one"})
        self.assertGreaterEqual(out["age"], 29)
        self.assertEqual(helper.holder_of(self.lock)["token"], "one")
        self.assertEqual(self.leftovers(), [])

    def test_takes_over_a_stale_lock_and_names_the_previous_holder(self):
        self.take("one")
        self.age_lock(1000)
        out = self.take("two", "60")
        self.assertEqual(out["taken"], True)
        self.assertEqual(out["stale"], True)
        self.assertEqual(out["holder"], {"token": "one", "run": "run-one"})
        self.assertGreaterEqual(out["age"], 999)
        self.assertEqual(helper.holder_of(self.lock)["token"], "two")
        self.assertEqual(self.leftovers(), [])

    def test_a_lock_without_a_readable_owner_has_an_empty_holder(self):
        os.mkdir(self.lock)
        with open(os.path.join(self.lock, "owner.json"), "w") as fh:
            fh.write("{not json")
        out = self.take("two")
        self.assertEqual(out["taken"], False)
        self.assertEqual(out["holder"], {})

    def test_unlock_removes_only_our_lock(self):
        self.take("one")
        self.assertEqual(helper.cmd_unlock(self.lock, "two"), {"released": False})
        self.assertTrue(os.path.isdir(self.lock))
        self.assertEqual(helper.cmd_unlock(self.lock, "one"), {"released": True})
        self.assertFalse(os.path.lexists(self.lock))
        self.assertEqual(self.leftovers(), [])

    def test_unlock_renames_the_lock_away_before_removing_it(self):
        self.take("one")
        renames = []
        real_rename = os.rename

        def watching_rename(src, dst):
            renames.append((src, dst))
            return real_rename(src, dst)

        with mock.patch.object(helper.os, "rename", watching_rename):
            helper.cmd_unlock(self.lock, "one")
        self.assertEqual(len(renames), 1)
        self.assertEqual(renames[0][0], self.lock)
        self.assertTrue(renames[0][1].startswith(self.lock + ".released-"))

    def test_unlock_of_a_missing_lock_is_not_ours(self):
        self.assertEqual(helper.cmd_unlock(self.lock, "one"), {"released": False})

    def test_touchlock_refreshes_only_our_lock(self):
        self.take("one")
        self.age_lock(500)
        old = os.stat(self.lock).st_mtime
        self.assertEqual(helper.cmd_touchlock(self.lock, "two"), {"fresh": False})
        self.assertEqual(os.stat(self.lock).st_mtime, old)
        self.assertEqual(helper.cmd_touchlock(self.lock, "one"), {"fresh": True})
        self.assertLess(time.time() - os.stat(self.lock).st_mtime, 60)

    def test_a_touched_lock_is_no_longer_stale(self):
        self.take("one")
        self.age_lock(1000)
        helper.cmd_touchlock(self.lock, "one")
        out = self.take("two", "60")
        self.assertEqual(out["taken"], False)
        self.assertEqual(out["holder"]["token"], "one")

    def interrupted_takeover(self, meanwhile):
        """Takes over a stale lock as waiter "two"; `meanwhile()` runs right before two moves
        the stale lock out of the way (when another waiter may get there first)."""
        self.take("one")
        self.age_lock(1000)
        real_rename = os.rename
        fired = []

        def rename(src, dst):
            if not fired and src == self.lock and ".stale-" in dst:
                fired.append(True)
                meanwhile()
            return real_rename(src, dst)

        with mock.patch.object(helper.os, "rename", rename):
            out = self.take("two", "60")
        self.assertEqual(fired, [True])
        return out

    # Issue 18: two waiters taking over one stale lock at once both believed they held it:
    # the later one moved the earlier one's fresh lock away as if it were the stale one.
    def test_two_waiters_taking_over_a_stale_lock_at_once_one_wins(self):
        other = []

        def second_waiter():
            other.append(subprocess.Popen(
                [sys.executable, "-c", helper_text(), "lock", self.lock, self.owner("three"), "60"],
                stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL))
            time.sleep(1.0)  # unguarded, it takes the stale lock over meanwhile

        out = self.interrupted_takeover(second_waiter)
        three = json.loads(other[0].communicate(timeout=30)[0])
        self.assertEqual(sorted([out["taken"], three["taken"]]), [False, True])
        winner = "two" if out["taken"] else "three"
        self.assertEqual(helper.holder_of(self.lock)["token"], winner)
        self.assertEqual(self.leftovers(), [])

    def test_a_takeover_that_moved_a_fresh_lock_puts_it_back_and_takes_nothing(self):
        # a waiter that takes no guard (an older helper, or no flock on this filesystem)
        def unguarded_waiter():
            with mock.patch.object(helper, "guarded", lambda lockdir: None):
                self.assertEqual(self.take("three", "60")["taken"], True)

        with mock.patch.object(helper, "guarded", lambda lockdir: None):
            out = self.interrupted_takeover(unguarded_waiter)
        self.assertEqual(out["taken"], False)
        self.assertEqual(out["holder"]["token"], "three")
        self.assertEqual(helper.holder_of(self.lock)["token"], "three")
        self.assertEqual(self.leftovers(), [])

    def test_lock_commands_wait_for_each_other(self):
        fd = helper.guarded(self.lock)
        try:
            started = time.time()
            waiting = subprocess.Popen(
                [sys.executable, "-c", helper_text(), "lock", self.lock, self.owner("one"), "60"],
                stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
            time.sleep(0.5)
            self.assertIsNone(waiting.poll())
        finally:
            helper.unguard(fd)
        self.assertEqual(json.loads(waiting.communicate(timeout=30)[0])["taken"], True)
        self.assertGreaterEqual(time.time() - started, 0.5)


class LinkSharedTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.root = self.path("app")
        self.release = self.path("app", "releases", "r1")
        os.makedirs(self.release)

    def link(self, release, *paths):
        return helper.cmd_linkshared(self.root, release, *paths)

    def test_seeds_shared_from_the_release_the_first_time_and_links_it(self):
        self.write("app/releases/r1/uploads/a.txt", "from release")
        out = self.link(self.release, "uploads")
        shared = os.path.join(self.root, "shared", "uploads")
        inside = os.path.join(self.release, "uploads")
        self.assertEqual(out, {"links": [{"path": inside, "target": shared}]})
        self.assertTrue(os.path.islink(inside))
        self.assertEqual(os.readlink(inside), shared)
        with open(os.path.join(shared, "a.txt")) as fh:
            self.assertEqual(fh.read(), "from release")

    # Issue 18: releases are no longer readable by every user, only by the service's group;
    # what is seeded into shared/ from a release must stay readable by that group.
    def test_seeds_shared_with_the_releases_group(self):
        self.write("app/releases/r1/instance/config/app.cfg", "x")
        others = [g for g in os.getgroups() if g != os.getegid()]
        if os.getuid() != 0 and not others:
            self.skipTest("needs root, or a second group, to give a tree another group")
        gid = 12345 if os.getuid() == 0 else others[0]
        os.chown(self.release, -1, gid)
        self.link(self.release, "instance", "empty")
        shared = os.path.join(self.root, "shared")
        for where in ["instance", "instance/config", "instance/config/app.cfg", "empty"]:
            self.assertEqual(os.stat(os.path.join(shared, where)).st_gid, gid, where)

    def test_keeps_existing_shared_content_over_the_release_copy(self):
        self.write("app/shared/uploads/kept.txt", "shared")
        self.write("app/releases/r1/uploads/new.txt", "release")
        self.link(self.release, "uploads")
        shared = os.path.join(self.root, "shared", "uploads")
        self.assertEqual(sorted(os.listdir(shared)), ["kept.txt"])
        self.assertEqual(sorted(os.listdir(os.path.join(self.release, "uploads"))), ["kept.txt"])

    def test_creates_an_empty_shared_directory_for_a_path_the_release_lacks(self):
        self.link(self.release, "var/cache")
        shared = os.path.join(self.root, "shared", "var", "cache")
        self.assertTrue(os.path.isdir(shared))
        self.assertEqual(os.listdir(shared), [])
        self.assertEqual(os.readlink(os.path.join(self.release, "var", "cache")), shared)

    def test_a_second_release_links_to_the_same_shared_directory(self):
        self.link(self.release, "uploads")
        self.write("app/shared/uploads/user.png", "png")
        second = self.path("app", "releases", "r2")
        os.makedirs(second)
        self.link(second, "uploads")
        self.assertEqual(os.listdir(os.path.join(second, "uploads")), ["user.png"])

    def test_linking_again_is_harmless(self):
        self.link(self.release, "uploads", "logs")
        self.link(self.release, "uploads", "logs")
        for name in ("uploads", "logs"):
            self.assertEqual(os.readlink(os.path.join(self.release, name)),
                             os.path.join(self.root, "shared", name))


class ReadGlobsTest(TempDirTest):
    def read(self, *patterns):
        out = helper.cmd_readglobs(*patterns)
        self.assertEqual(set(out), {"files"})
        return out["files"]

    def test_reads_a_plain_path(self):
        path = self.write("nginx.conf", "events {}\n")
        self.assertEqual(self.read(path), {path: [{"path": path, "text": "events {}\n"}]})

    def test_a_missing_plain_path_is_an_error_entry(self):
        path = self.path("missing.conf")
        entry = self.read(path)[path]
        self.assertEqual(len(entry), 1)
        self.assertEqual(entry[0]["path"], path)
        self.assertIn("No such file", entry[0]["error"])
        self.assertNotIn("text", entry[0])

    def test_expands_a_glob_sorted_and_reads_every_match(self):
        self.write("sites/b.conf", "b")
        self.write("sites/a.conf", "a")
        self.write("sites/c.txt", "not matched")
        pattern = self.path("sites", "*.conf")
        self.assertEqual(self.read(pattern)[pattern], [
            {"path": self.path("sites", "a.conf"), "text": "a"},
            {"path": self.path("sites", "b.conf"), "text": "b"},
        ])

    def test_a_glob_without_matches_is_empty(self):
        os.mkdir(self.path("sites"))
        pattern = self.path("sites", "*.conf")
        self.assertEqual(self.read(pattern), {pattern: []})

    def test_a_directory_that_cannot_be_listed_is_an_error_not_empty(self):
        os.mkdir(self.path("locked"))
        locked = self.path("locked")
        real_access = os.access

        def access(path, mode):
            return False if path == locked else real_access(path, mode)

        with mock.patch.object(helper.os, "access", access):
            pattern = os.path.join(locked, "*.conf")
            self.assertEqual(self.read(pattern), {pattern: [{"path": locked, "error": "cannot list the directory"}]})

    def test_a_file_over_four_megabytes_is_refused(self):
        path = self.write("huge.conf", b"#" * ((4 << 20) + 1), "wb")
        self.assertEqual(self.read(path)[path], [{"path": path, "error": "larger than %d bytes" % (4 << 20)}])

    def test_undecodable_bytes_are_replaced(self):
        path = self.write("latin.conf", b"server_name caf\xe9;\n", "wb")
        self.assertEqual(self.read(path)[path][0]["text"], "server_name caf\ufffd;\n")


class GunicornEnvTest(TempDirTest):
    def env(self, unit, *paths):
        out = helper.cmd_gunicornenv(unit, *paths)
        return json.dumps(out), out

    def test_prints_only_the_two_gunicorn_names_later_files_winning(self):
        first = self.write("a.env", "WEB_CONCURRENCY=2\nGUNICORN_CMD_ARGS='--threads 2'\nSECRET_KEY=%s\n" % SECRET)
        second = self.write("b.env", "WEB_CONCURRENCY=5\nAPI_TOKEN=%s\n" % SECRET)
        raw, out = self.env("-", first, self.path("missing.env"), second)
        self.assertEqual(out, {"readable": True, "values": {"WEB_CONCURRENCY": "5", "GUNICORN_CMD_ARGS": "--threads 2"}})
        self.assertNotIn(SECRET, raw)
        self.assertNotIn("SECRET_KEY", raw)

    def test_absent_names_are_omitted(self):
        path = self.write("a.env", "OTHER=%s\n" % SECRET)
        raw, out = self.env("-", path)
        self.assertEqual(out, {"readable": True, "values": {}})
        self.assertNotIn(SECRET, raw)

    def test_an_unreadable_file_gives_readable_false_and_no_values(self):
        good = self.write("a.env", "WEB_CONCURRENCY=3\n")
        os.mkdir(self.path("dir.env"))
        _, out = self.env("-", good, self.path("dir.env"))
        self.assertEqual(out, {"readable": False, "values": {}})

    def test_reads_the_units_environment_before_its_files(self):
        shown = subprocess.CompletedProcess(
            [], 0, stdout='WEB_CONCURRENCY=3 "GUNICORN_CMD_ARGS=--bind unix:/run/a.sock" SECRET_KEY=%s\n' % SECRET, stderr="")
        path = self.write("a.env", "WEB_CONCURRENCY=7\n")
        with mock.patch("subprocess.run", return_value=shown) as run:
            raw, out = self.env("myapp.service", path)
        self.assertEqual(run.call_args[0][0], ["systemctl", "show", "-p", "Environment", "--value", "myapp.service"])
        self.assertEqual(out, {"readable": True, "values": {"WEB_CONCURRENCY": "7", "GUNICORN_CMD_ARGS": "--bind unix:/run/a.sock"}})
        self.assertNotIn(SECRET, raw)

    def test_a_failing_systemctl_gives_readable_false(self):
        failed = subprocess.CompletedProcess([], 1, stdout="", stderr="Failed to connect to bus")
        with mock.patch("subprocess.run", return_value=failed):
            _, out = self.env("myapp.service")
        self.assertEqual(out, {"readable": False, "values": {}})

    def test_a_missing_systemctl_gives_readable_false(self):
        with mock.patch("subprocess.run", side_effect=FileNotFoundError("systemctl")):
            _, out = self.env("myapp.service")
        self.assertEqual(out, {"readable": False, "values": {}})


class AccessTest(TempDirTest):
    def access(self, request):
        return helper.cmd_access(json.dumps(request))

    def assert_run_result(self, result):
        self.assertEqual(set(result), {"rc", "out"})
        self.assertIsInstance(result["rc"], int)
        self.assertIsInstance(result["out"], str)

    def test_answers_every_question_in_one_structure(self):
        readable = self.write("readable.txt", "x")
        marker = self.path("must-not-exist")
        out = self.access({
            "sudo": [["systemctl", "reload", "myapp"], ["touch", marker]],
            "readable": [readable, self.path("missing.txt")],
            "which": ["sh", "zdd-no-such-program"],
        })
        self.assertEqual(set(out), {"user", "uid", "groups", "listing", "sudo", "readable", "which", "hidepid"})
        self.assertEqual(out["uid"], os.getuid())
        self.assertIsInstance(out["user"], str)
        self.assertEqual(out["groups"], sorted(set(out["groups"])))
        self.assertTrue(all(isinstance(g, str) for g in out["groups"]))
        self.assert_run_result(out["listing"])
        self.assertEqual(len(out["sudo"]), 2)
        for result in out["sudo"]:
            self.assert_run_result(result)
        self.assertEqual(out["readable"], {readable: True, self.path("missing.txt"): False})
        self.assertTrue(out["which"]["sh"].endswith("/sh"))
        self.assertIsNone(out["which"]["zdd-no-such-program"])
        self.assertFalse(os.path.exists(marker), "sudo -l must only list, never run")

    def test_an_empty_request_still_lists_sudo(self):
        out = self.access({})
        self.assertEqual(out["sudo"], [])
        self.assertEqual(out["readable"], {})
        self.assertEqual(out["which"], {})
        self.assert_run_result(out["listing"])

    def test_without_sudo_every_sudo_answer_is_127(self):
        empty = self.path("empty-bin")
        os.mkdir(empty)
        with mock.patch.dict(os.environ, {"PATH": empty}):
            out = self.access({"sudo": [["systemctl", "reload", "myapp"]], "which": ["sh"]})
        self.assertEqual(out["listing"]["rc"], 127)
        self.assertEqual([r["rc"] for r in out["sudo"]], [127])
        self.assertIn("sudo", out["sudo"][0]["out"])
        self.assertIsNotNone(out["which"]["sh"], "standard directories are searched too")


class ProcHidepidTest(TempDirTest):
    PROC = "23 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc %s\n"
    SYS = "24 23 0:21 /sys /proc/sys ro,nosuid,nodev,noexec,relatime shared:12 - proc proc %s\n"

    def hidepid(self, *lines, uid=1000, groups=(1000,)):
        path = self.write("mountinfo", "".join(lines))
        with mock.patch("os.getuid", return_value=uid), mock.patch("os.getgid", return_value=groups[0]), \
                mock.patch("os.getgroups", return_value=list(groups)):
            return helper.proc_hidepid(path)

    def test_names_the_hidepid_value_that_hides_other_users_processes(self):
        for value in ("invisible", "2", "noaccess", "ptraceable"):
            self.assertEqual(self.hidepid(self.PROC % ("rw,hidepid=" + value),
                                          self.SYS % ("rw,hidepid=" + value)), value)

    def test_a_plain_proc_hides_nothing(self):
        self.assertIsNone(self.hidepid(self.PROC % "rw"))
        self.assertIsNone(self.hidepid(self.PROC % "rw,hidepid=0"))
        self.assertIsNone(self.hidepid(self.PROC % "rw,hidepid=off"))

    def test_root_and_the_mounts_gid_group_see_everything(self):
        line = self.PROC % "rw,hidepid=invisible,gid=27"
        self.assertIsNone(self.hidepid(line, uid=0, groups=(0,)))
        self.assertIsNone(self.hidepid(line, groups=(1000, 27)))
        self.assertEqual(self.hidepid(line, groups=(1000, 28)), "invisible")

    def test_the_last_mount_on_proc_is_the_one_seen(self):
        self.assertEqual(self.hidepid(self.PROC % "rw", self.PROC % "rw,hidepid=invisible"), "invisible")
        self.assertIsNone(self.hidepid(self.PROC % "rw,hidepid=2", self.PROC % "rw"))

    def test_an_unreadable_mountinfo_is_no_answer(self):
        self.assertIsNone(helper.proc_hidepid(self.path("missing")))


class ImportCheckAndRunTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.envfile = self.write("app.env", "GREETING=hello from the env file\n")

    def check(self, envfile, app):
        done = run_as_c("importcheck", envfile, self.path("code"), app)
        self.assertEqual(done.returncode, 0, done.stderr)
        return answer_of(done)

    def test_importcheck_accepts_a_wsgi_callable(self):
        self.write("code/wsgi.py", "import os\nassert os.environ['GREETING']\ndef app(environ, start_response):\n    return []\n")
        out = self.check(self.envfile, "wsgi:app")
        self.assertEqual(out["ok"], True)
        self.assertEqual(out["file"], os.path.join(self.path("code"), "wsgi.py"))

    def test_importcheck_reports_how_long_the_import_took(self):
        self.write("code/slow.py", "import time\ntime.sleep(0.3)\ndef app(environ, start_response):\n    return []\n")
        seconds = self.check("-", "slow:app")["seconds"]
        self.assertGreaterEqual(seconds, 0.3)
        self.assertLess(seconds, 5)

    def test_importcheck_calls_an_application_factory(self):
        self.write("code/factory.py", "def create_app():\n    return lambda environ, start_response: []\n")
        self.assertEqual(self.check("-", "factory:create_app()")["ok"], True)

    def test_importcheck_fails_with_the_traceback_when_the_import_fails(self):
        self.write("code/broken.py", "raise RuntimeError('database url missing')\n")
        out = self.check("-", "broken:app")
        self.assertEqual(out["ok"], False)
        self.assertEqual(out["failure"], {"type": "RuntimeError", "message": "database url missing", "file": "broken.py", "line": 1})
        self.assertIn("RuntimeError: database url missing", out["traceback"])
        self.assertTrue(out["traceback"].startswith("Traceback"), out["traceback"])
        self.assertNotIn("load_app", out["traceback"], "the helper's own frames are left out")

    def test_importcheck_refuses_an_object_that_is_not_callable(self):
        self.write("code/plain.py", "app = 42\n")
        out = self.check("-", "plain:app")
        self.assertEqual(out["failure"]["type"], "AppNotFound")
        self.assertIn("is not a WSGI callable", out["failure"]["message"])

    def test_run_execs_in_the_directory_with_the_env_file_loaded(self):
        os.mkdir(self.path("code"))
        done = run_as_c("run", self.envfile, self.path("code"), "/bin/sh", "-c", 'printf "%s|" "$GREETING"; pwd')
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout, "hello from the env file|%s\n" % os.path.realpath(self.path("code")))

    def test_run_loads_every_environment_file_in_order(self):
        os.mkdir(self.path("code"))
        later = self.write("later.env", "GREETING=from the later file\n")
        spec = json.dumps({"set": ["GREETING=from Environment=", "OTHER=kept"],
                           "files": [{"path": self.envfile, "optional": False},
                                     {"path": self.path("none.env"), "optional": True},
                                     {"path": later, "optional": False}]})
        done = run_as_c("run", spec, self.path("code"), "/bin/sh", "-c", 'printf "%s|%s" "$GREETING" "$OTHER"')
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout, "from the later file|kept")

    def test_run_passes_the_commands_exit_status_through(self):
        done = run_as_c("run", "-", self.dir, "/bin/sh", "-c", "exit 3")
        self.assertEqual(done.returncode, 3)


class ImportWithoutTheEnvironmentTest(TempDirTest):
    """importcheck "?": the unit has an EnvironmentFile the deploy user cannot read. The
    release is imported without it, and a failure is refused only for a cause that no
    variable can change (`independent`); anything else may depend on the environment."""

    READS_SECRET = "import os\nSECRET_KEY = os.environ['SECRET_KEY']\n"
    APP = "def app(environ, start_response):\n    return []\n"

    def check(self, files, app="wsgi:app"):
        for name, text in files.items():
            self.write("code/" + name, text)
        done = run_as_c("importcheck", "?", self.path("code"), app)
        self.assertEqual(done.returncode, 0, done.stderr)
        return answer_of(done)

    def test_a_release_that_imports_without_it_passes(self):
        out = self.check({"wsgi.py": "import os\nDEBUG = os.environ.get('DEBUG')\n" + self.APP})
        self.assertEqual(out["ok"], True)
        self.assertEqual(out["reads"], [{"name": "DEBUG", "set": False}])

    def test_a_module_that_is_not_installed_is_independent(self):
        out = self.check({"wsgi.py": "import flask_not_installed\n" + self.READS_SECRET + self.APP})
        self.assertEqual(out["failure"]["type"], "ModuleNotFoundError")
        self.assertIn("no module named flask_not_installed is installed", out["independent"])
        self.assertEqual(out["reads"], [])

    def test_a_syntax_error_is_independent(self):
        out = self.check({"wsgi.py": "def app(:\n"})
        self.assertEqual(out["failure"]["type"], "SyntaxError")
        self.assertEqual(out["independent"], "wsgi.py does not compile (line 1)")

    def test_a_file_missing_from_the_release_is_independent(self):
        out = self.check({"wsgi.py": "open('settings.json').read()\n" + self.APP})
        self.assertEqual(out["independent"], "settings.json is missing from the release")

    def test_a_missing_app_is_independent(self):
        out = self.check({"wsgi.py": "application = None\n"})
        self.assertEqual(out["independent"], "wsgi has no attribute app")

    def test_an_unset_variable_may_depend_on_the_environment(self):
        out = self.check({"wsgi.py": self.READS_SECRET + self.APP})
        self.assertEqual(out["failure"]["type"], "KeyError")
        self.assertIsNone(out["independent"])
        self.assertEqual(out["reads"], [{"name": "SECRET_KEY", "set": False}])

    def test_an_error_raised_after_reading_the_environment_may_depend_on_it(self):
        out = self.check({"wsgi.py": "import os, importlib\nimportlib.import_module(os.environ.get('SETTINGS', 'settings_dev'))\n" + self.APP})
        self.assertEqual(out["failure"]["type"], "ModuleNotFoundError")
        self.assertIsNone(out["independent"])

    def test_a_variable_read_through_a_function_the_release_calls_counts(self):
        out = self.check({"wsgi.py": "import os\ndef setting(name):\n    return os.getenv(name) or 'missing.json'\nopen(setting('CONFIG'))\n" + self.APP})
        self.assertEqual(out["failure"]["type"], "FileNotFoundError")
        self.assertIsNone(out["independent"])
        self.assertEqual(out["reads"], [{"name": "CONFIG", "set": False}])

    def test_a_refused_connection_may_depend_on_the_environment(self):
        out = self.check({"wsgi.py": "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=2)\n" + self.APP})
        self.assertIsNone(out["independent"])

    def test_a_file_outside_the_release_may_depend_on_it(self):
        out = self.check({"wsgi.py": "open('/nonexistent/zdd/settings.json')\n" + self.APP})
        self.assertIsNone(out["independent"])

    def test_a_missing_module_after_an_unset_variable_is_found_in_the_source(self):
        out = self.check({"wsgi.py": self.READS_SECRET + "import flask_not_installed\n" + self.APP})
        self.assertEqual(out["failure"]["type"], "KeyError")
        self.assertEqual(
            out["independent"], "wsgi.py imports flask_not_installed, which is not installed for %s" % sys.executable)

    def test_a_syntax_error_in_a_module_imported_after_an_unset_variable_is_found_in_the_source(self):
        out = self.check({
            "wsgi.py": self.READS_SECRET + "from app import views\n" + self.APP,
            "app/__init__.py": "from . import models\n",
            "app/models.py": "x = 1\n",
            "app/views.py": "def index(:\n",
        })
        self.assertEqual(out["independent"], "app/views.py does not compile (line 1): invalid syntax")

    def test_a_submodule_the_release_lacks_is_found_in_the_source(self):
        out = self.check({
            "wsgi.py": self.READS_SECRET + "import app.missing\n" + self.APP,
            "app/__init__.py": "",
        })
        self.assertEqual(out["independent"], "wsgi.py imports app.missing, which the release does not hold")

    def test_a_submodule_is_not_judged_where_the_package_may_hold_it_elsewhere(self):
        for init in ("import sys\nsys.modules['app.virtual'] = sys\n", None):
            shutil.rmtree(self.path("code"), ignore_errors=True)
            files = {"wsgi.py": self.READS_SECRET + "import app.virtual\n" + self.APP}
            if init is None:
                os.makedirs(self.path("code", "app"))  # a namespace package
            else:
                files["app/__init__.py"] = init
            self.assertIsNone(self.check(files)["independent"])

    def test_the_source_judges_only_imports_that_always_run(self):
        out = self.check({"wsgi.py": self.READS_SECRET + (
            "try:\n    import optional_speedups\nexcept ImportError:\n    pass\n"
            "if SECRET_KEY == 'x':\n    import only_sometimes\n"
            "def view():\n    import inside_a_function\n") + self.APP})
        self.assertIsNone(out["independent"])

    def test_the_source_does_not_judge_a_module_that_moves_the_import_path(self):
        out = self.check({"wsgi.py": self.READS_SECRET + "import sys\nsys.path.append(SECRET_KEY)\nimport plugin\n" + self.APP})
        self.assertIsNone(out["independent"])

    def test_without_a_watch_on_os_environ_only_the_source_is_judged(self):
        self.write("code/wsgi.py", "import flask_not_installed\n")
        with mock.patch.object(helper, "watch_environment", return_value=None), \
                mock.patch.object(helper.os, "chdir"), mock.patch.object(sys, "path", list(sys.path)):
            out = helper.cmd_importcheck("?", self.path("code"), "wsgi:app")
        self.assertEqual(out["reads"], [])
        self.assertEqual(
            out["independent"], "wsgi.py imports flask_not_installed, which is not installed for %s" % sys.executable)

    def test_what_can_be_read_is_loaded_and_the_failure_still_judged(self):
        # "?" before the spec: the Environment= lines and the readable files are loaded,
        # the file the deploy user cannot read (here: absent) adds nothing
        readable = self.write("readable.env", "APP_NAME=shop\n")
        spec = json.dumps({"set": ["APP_MODE=production"],
                           "files": [{"path": readable, "optional": False},
                                     {"path": self.path("unreadable.env"), "optional": False}]})
        self.write("code/wsgi.py", "import os\nMODE = os.environ['APP_MODE'] + os.environ['APP_NAME']\n" + self.APP)
        out = answer_of(run_as_c("importcheck", "?" + spec, self.path("code"), "wsgi:app"))
        self.assertEqual(out["ok"], True)
        self.assertEqual(out["reads"], [{"name": "APP_MODE", "set": True}, {"name": "APP_NAME", "set": True}])
        self.write("code/wsgi.py", self.READS_SECRET + self.APP)
        out = answer_of(run_as_c("importcheck", "?" + spec, self.path("code"), "wsgi:app"))
        self.assertEqual((out["ok"], out["independent"]), (False, None))
        self.assertEqual(out["reads"], [{"name": "SECRET_KEY", "set": False}])

    def test_with_the_env_file_or_none_nothing_is_judged(self):
        self.write("code/wsgi.py", "import flask_not_installed\n")
        for envfile in (self.write("app.env", "A=1\n"), "-"):
            out = answer_of(run_as_c("importcheck", envfile, self.path("code"), "wsgi:app"))
            self.assertEqual((out["ok"], out["independent"]), (False, None))


class HookTest(TempDirTest):
    def spec(self, command, **extra):
        release = self.path("releases/r1")
        os.makedirs(release, exist_ok=True)
        env_file = self.write("app.env", "SECRET_KEY=%s\nGREETING='hello there'\n" % SECRET)
        environment = json.dumps({"set": ["GREETING=from the unit", "UNIT_ONLY=yes"],
                                  "files": [{"path": env_file, "optional": False},
                                            {"path": self.path("missing.env"), "optional": True}]})
        spec = {"environment": environment, "bin": self.path("venv/bin"),
                "env": {"ZDD_RELEASE": "r1"}, "dir": release, "command": command}
        spec.update(extra)
        return json.dumps(spec)

    def test_runs_the_command_in_the_release_with_the_unit_environment_and_the_venv_first(self):
        done = run_as_c("hook", self.spec('echo "$GREETING|$UNIT_ONLY|$ZDD_RELEASE|$(pwd)|${PATH%%:*}|${#SECRET_KEY}"'))
        self.assertEqual(done.returncode, 0, done.stderr)
        # Environment= first, then the EnvironmentFile, which wins (as systemd builds it)
        self.assertEqual(done.stdout.strip(), "hello there|yes|r1|%s|%s|%d" % (
            os.path.realpath(self.path("releases/r1")), self.path("venv/bin"), len(SECRET)))

    def test_the_command_exit_status_is_the_hook_s(self):
        done = run_as_c("hook", self.spec("echo building >&2; exit 7"))
        self.assertEqual(done.returncode, 7)
        self.assertIn("building", done.stderr)

    def test_shell_syntax_in_values_stays_data(self):
        marker = self.path("injected")
        done = run_as_c("hook", self.spec('printf "%s" "$ZDD_RELEASE"', env={"ZDD_RELEASE": "$(touch %s)" % marker}))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout, "$(touch %s)" % marker)
        self.assertFalse(os.path.exists(marker))

    def test_an_unreadable_environment_file_fails_before_the_command(self):
        env_file = self.path("a-directory.env")
        os.makedirs(env_file)  # unreadable as a file, also for root
        done = run_as_c("hook", self.spec("echo ran", environment=json.dumps(
            {"set": [], "files": [{"path": env_file, "optional": False}]})))
        self.assertNotEqual(done.returncode, 0)
        self.assertNotIn("ran", done.stdout)
        self.assertIn("cannot read the EnvironmentFile", done.stderr)


class WatchWorkersTest(unittest.TestCase):
    """watchworkers: the host waits for the new workers and answers with one snapshot."""

    def start_master(self, children):
        """A stand-in master: a shell whose `children` sleeping children are its workers."""
        script = " ".join(["sleep 30 &"] * children) + " wait"
        master = subprocess.Popen(["sh", "-c", script], start_new_session=True)
        self.addCleanup(lambda: (os.killpg(master.pid, 9), master.wait()))
        deadline = time.monotonic() + 5
        while len(helper.new_leaves(helper.process_table(), master.pid, set())) < children:
            self.assertLess(time.monotonic(), deadline, "the stand-in workers did not start")
            time.sleep(0.01)
        return master.pid

    def spec(self, main, **changes):
        spec = {
            "show": ["printf", "MainPID=%s\\nActiveState=active\\n", str(main)],
            "ps": ["echo", "ps output"],
            "pwdx": ["pwdx"],
            "mainPid": main,
            "old": [],
            "workers": 2,
            "timeout": 5,
            "interval": 0.02,
        }
        spec.update(changes)
        return json.dumps(spec)

    def watch(self, spec):
        out = helper.cmd_watchworkers(spec)
        self.assertEqual(set(out), {"show", "ps", "dirs"})
        return out

    def test_answers_at_once_when_the_new_workers_are_up(self):
        main = self.start_master(2)
        started = time.monotonic()
        out = self.watch(self.spec(main))
        show, ps, dirs = out["show"], out["ps"], out["dirs"]
        self.assertLess(time.monotonic() - started, 2)
        self.assertIn("MainPID=%d" % main, show)
        self.assertEqual(ps.strip(), "ps output")
        workers = helper.new_leaves(helper.process_table(), main, set())
        self.assertEqual(sorted(int(line.split(":")[0]) for line in dirs.strip().splitlines()), workers)
        self.assertIn(": /", dirs)

    def test_waits_while_an_old_worker_lives_until_the_timeout(self):
        main = self.start_master(2)
        old = helper.new_leaves(helper.process_table(), main, set())[:1]
        started = time.monotonic()
        out = self.watch(self.spec(main, old=old, workers=1, timeout=0.3))
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        # the snapshot names only the new worker's directory
        dirs = out["dirs"]
        self.assertNotIn("%d:" % old[0], dirs)
        self.assertEqual(len(dirs.strip().splitlines()), 1)

    def test_waits_for_enough_new_workers_until_the_timeout(self):
        main = self.start_master(2)
        started = time.monotonic()
        self.watch(self.spec(main, workers=3, timeout=0.3))
        self.assertGreaterEqual(time.monotonic() - started, 0.3)

    def test_answers_at_once_when_the_master_changed_or_the_unit_is_not_active(self):
        main = self.start_master(2)
        started = time.monotonic()
        out = self.watch(self.spec(main, mainPid=main + 100000, workers=5))
        self.assertLess(time.monotonic() - started, 2)
        self.assertIn("MainPID=%d" % main, out["show"])
        inactive = ["printf", "MainPID=0\\nActiveState=failed\\n"]
        out = self.watch(self.spec(main, show=inactive, pwdx=None, workers=5))
        self.assertLess(time.monotonic() - started, 2)
        self.assertIn("ActiveState=failed", out["show"])
        self.assertEqual(out["dirs"], "")

    def test_answers_at_once_when_the_master_is_gone(self):
        gone = subprocess.Popen(["true"])
        gone.wait()
        started = time.monotonic()
        self.watch(self.spec(gone.pid, workers=1))
        self.assertLess(time.monotonic() - started, 2)

    def test_new_leaves_finds_the_workers_below_a_launcher(self):
        table = {10: (1, "S"), 11: (10, "S"), 12: (11, "S"), 13: (11, "S"), 14: (11, "Z"), 20: (1, "S")}
        self.assertEqual(helper.new_leaves(table, 10, set()), [12, 13])
        self.assertEqual(helper.new_leaves(table, 10, {12}), [13])
        self.assertEqual(helper.new_leaves(table, 20, set()), [])


class DbRevisionsTest(TempDirTest):
    """dbrevisions: `flask db current` and `flask db heads` in one process, the app imported once."""

    # A stand-in for Flask's command line, found first on sys.path (the release directory):
    # it prints what it was asked, where, with which environment, and how often it was loaded.
    FAKE_FLASK_CLI = (
        "import os, sys\n"
        "loads = []\n"
        "class Cli:\n"
        "    def main(self, args, prog_name, standalone_mode):\n"
        "        assert prog_name == 'flask' and standalone_mode is False\n"
        "        loads.append(1)\n"
        "        if os.environ.get('FAIL'):\n"
        "            raise RuntimeError('cannot read the database')\n"
        "        print('%s %s in %s, load %d' % (' '.join(args), os.environ['GREETING'], os.path.basename(os.getcwd()), len(loads)))\n"
        "cli = Cli()\n"
    )

    def setUp(self):
        super().setUp()
        self.write("code/flask/__init__.py", "")
        self.write("code/flask/cli.py", self.FAKE_FLASK_CLI)
        self.write("code/migrations/env.py", "")

    def test_answers_current_and_heads_from_one_process(self):
        envfile = self.write("app.env", "GREETING=hello\n")
        done = run_as_c("dbrevisions", envfile, self.path("code"), "wsgi")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(answer_of(done), {
            "migrations": True,
            "current": "--app wsgi db current hello in code, load 1\n",
            "heads": "--app wsgi db heads hello in code, load 2\n",
        })

    def test_says_no_migrations_without_a_migrations_directory(self):
        shutil.rmtree(self.path("code/migrations"))
        done = run_as_c("dbrevisions", "-", self.path("code"), "wsgi")
        self.assertEqual((done.returncode, answer_of(done)), (0, {"migrations": False}))

    def test_fails_when_a_read_fails(self):
        envfile = self.write("app.env", "GREETING=hello\nFAIL=1\n")
        done = run_as_c("dbrevisions", envfile, self.path("code"), "wsgi")
        self.assertEqual(done.returncode, 1)
        self.assertEqual(answer_of(done)["error"], {"type": "RuntimeError", "message": "cannot read the database"})


if __name__ == "__main__":
    unittest.main()
