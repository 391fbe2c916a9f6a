# Unit tests of examples/server/adopt.py's logic (standard library only): reading units,
# Gunicorn's command line and config, Nginx files, the app directory and the venv, and what
# it writes (the converted command, the drop-in, the Nginx edits, the sudoers file). The
# conversion of real servers is tested on real hosts in __tests__/integration/adopt.test.ts.
#
# Run: python3 -m unittest -v discover -s __tests__/python

import importlib.util
import os
import pwd
import shutil
import socket
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True

ADOPT_PATH = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "server", "adopt.py")
)


def load_adopt():
    spec = importlib.util.spec_from_file_location("adopt", ADOPT_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["adopt"] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


adopt = load_adopt()

TUTORIAL_UNIT = """[Unit]
Description=Gunicorn instance to serve myproject
After=network.target

[Service]
User=app
Group=www-data
WorkingDirectory=/home/app/myproject
Environment="PATH=/home/app/myproject/venv/bin"
ExecStart=/home/app/myproject/venv/bin/gunicorn --workers 3 \\
    --bind unix:myproject.sock -m 007 wsgi:app

[Install]
WantedBy=multi-user.target
"""


def unit_of(text, name="myproject", **props):
    entries = adopt.parse_unit_text(text)
    base = {"WorkingDirectory": "/home/app/myproject", "User": "app", "Group": "www-data", "RuntimeDirectory": ""}
    base.update(props)
    return adopt.Unit(name, base, f"/etc/systemd/system/{name}.service", [], [("f", text)], entries)


def survey_of(unit, app_dir="/home/app/myproject", venv="/home/app/myproject/venv", listens=None, workers=(11, 12, 13)):
    g = adopt.read_gunicorn(unit)
    return adopt.Survey(
        unit, g, unit.props["WorkingDirectory"], app_dir, 10, list(workers),
        listens or [adopt.Listen("unix", f"{app_dir}/myproject.sock")], venv, None, "/", {}, [],
    )


class UnitFiles(unittest.TestCase):
    def test_reads_sections_comments_and_continued_lines(self):
        entries = adopt.parse_unit_text(TUTORIAL_UNIT + "# ExecStart=/not/this\n; nor=this\n")
        starts = adopt.service_list(entries, "ExecStart")
        self.assertEqual(starts, ["/home/app/myproject/venv/bin/gunicorn --workers 3  --bind unix:myproject.sock -m 007 wsgi:app"])
        self.assertIn(("Install", "WantedBy", "multi-user.target"), entries)

    def test_an_empty_assignment_resets_a_list(self):
        entries = adopt.parse_unit_text("[Service]\nExecStart=/a\n[Service]\nExecStart=\nExecStart=/b x\n")
        self.assertEqual(adopt.service_list(entries, "ExecStart"), ["/b x"])

    def test_splits_exec_lines_with_prefixes_and_quotes(self):
        self.assertEqual(adopt.split_exec('-/v/bin/gunicorn --name "my app" wsgi:app'), ("-", ["/v/bin/gunicorn", "--name", "my app", "wsgi:app"]))
        self.assertEqual(adopt.split_exec("/v/bin/gunicorn --access-logformat 100%%")[1][-1], "100%")

    def test_refuses_what_systemd_would_rewrite(self):
        for line in ["/v/bin/gunicorn --bind ${BIND} wsgi:app", "/v/bin/gunicorn --name %n wsgi:app", "@/v/bin/gunicorn gunicorn wsgi:app"]:
            with self.assertRaises(adopt.Refused, msg=line):
                adopt.split_exec(line)

    def test_environment_and_environment_files(self):
        pairs = adopt.env_assignments(['"PATH=/a b/bin" LANG=C', "X=1"])
        self.assertEqual(pairs, [("PATH", "/a b/bin"), ("LANG", "C"), ("X", "1")])
        with tempfile.NamedTemporaryFile("w", suffix=".env", delete=False) as fh:
            fh.write("# comment\nWEB_CONCURRENCY=4\nGUNICORN_CMD_ARGS='--timeout 60'\n")
        try:
            unit = unit_of(f"[Service]\nEnvironment=WEB_CONCURRENCY=2 A=1\nEnvironmentFile=-{fh.name}\nExecStart=/v/bin/gunicorn wsgi:app\n")
            self.assertEqual(unit.env()["WEB_CONCURRENCY"], "4")
            self.assertEqual(unit.env()["GUNICORN_CMD_ARGS"], "--timeout 60")
            self.assertEqual(unit.env()["A"], "1")
        finally:
            os.unlink(fh.name)


class GunicornCommandLine(unittest.TestCase):
    def test_reads_options_in_every_form(self):
        options, positional = adopt.parse_gunicorn_args(
            ["-w", "3", "--bind=unix:a.sock", "-b127.0.0.1:8000", "--chd", "/srv", "--preload", "-m", "007", "wsgi:app"]
        )
        self.assertEqual([(o.name, o.value) for o in options], [
            ("workers", "3"), ("bind", "unix:a.sock"), ("bind", "127.0.0.1:8000"), ("chdir", "/srv"), ("preload", None), ("umask", "007"),
        ])
        self.assertEqual(positional, ["wsgi:app"])
        self.assertEqual(options[1].tokens, ["--bind=unix:a.sock"])

    def test_refuses_options_it_cannot_read(self):
        for args in (["--frobnicate", "x"], ["--re", "x"], ["-Z"], ["--workers"], ["--preload=yes"]):
            with self.assertRaises(adopt.Refused, msg=args):
                adopt.parse_gunicorn_args(args)

    def test_finds_gunicorn_directly_or_through_python_m(self):
        self.assertEqual(adopt.split_launcher(["/v/bin/gunicorn", "x"]), (["/v/bin/gunicorn"], ["x"]))
        self.assertEqual(adopt.split_launcher(["/v/bin/python3.11", "-m", "gunicorn", "x"]), (["/v/bin/python3.11", "-m", "gunicorn"], ["x"]))
        for argv in (["/bin/sh", "-c", "exec gunicorn x"], ["/usr/local/bin/poetry", "run", "gunicorn"], ["/srv/start.sh"]):
            with self.assertRaises(adopt.Refused):
                adopt.split_launcher(argv)

    def test_refuses_preload_wherever_it_is_set(self):
        unit = unit_of("[Service]\nExecStart=/v/bin/gunicorn --preload wsgi:app\n")
        with self.assertRaisesRegex(adopt.Refused, "--preload"):
            adopt.gunicorn_refusals(adopt.read_gunicorn(unit))
        unit = unit_of("[Service]\nEnvironment=\"GUNICORN_CMD_ARGS=--preload\"\nExecStart=/v/bin/gunicorn wsgi:app\n")
        with self.assertRaisesRegex(adopt.Refused, "GUNICORN_CMD_ARGS"):
            adopt.gunicorn_refusals(adopt.read_gunicorn(unit))

    def test_reads_a_config_file_and_refuses_preload_in_it(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "gunicorn.conf.py")
            with open(path, "w") as fh:
                fh.write("import multiprocessing\nbind = 'unix:/run/a.sock'\nworkers = multiprocessing.cpu_count() * 2 + 1\npreload_app = False\n")
            settings = adopt.read_gunicorn_config(path)
            self.assertEqual(settings["bind"], "unix:/run/a.sock")
            self.assertIs(settings["workers"], adopt.UNKNOWN)
            unit = unit_of("[Service]\nExecStart=/v/bin/gunicorn wsgi:app\n", WorkingDirectory=d)
            g = adopt.read_gunicorn(unit)
            self.assertEqual((g.config, g.config_given), (path, False))
            adopt.gunicorn_refusals(g)
            with open(path, "a") as fh:
                fh.write("preload_app = True\n")
            with self.assertRaisesRegex(adopt.Refused, "preload_app = True"):
                adopt.gunicorn_refusals(adopt.read_gunicorn(unit))


class Conversion(unittest.TestCase):
    def test_the_tutorial_unit_becomes_the_action_layout(self):
        s = survey_of(unit_of(TUTORIAL_UNIT))
        argv, workers = adopt.converted_argv(s, "/srv/myproject", "/srv/myproject/venv")
        self.assertEqual(workers, 3)
        line = adopt.exec_line(argv, "unix:/run/myproject/myproject.sock")
        self.assertEqual(line, "/srv/myproject/venv/bin/gunicorn -m 007 --chdir /srv/myproject/current --bind unix:/run/myproject/myproject.sock --workers 3 wsgi:app")
        dropin = adopt.dropin_text(s, argv, "/run/myproject/myproject.sock", "myproject", "/srv/myproject", "/srv/myproject/venv")
        self.assertIn("\nWorkingDirectory=/srv/myproject\nRuntimeDirectory=myproject\nEnvironment=PATH=/srv/myproject/venv/bin\nExecStart=\nExecStart=" + line, dropin)
        self.assertTrue(dropin.endswith("ExecReload=\nExecReload=/bin/kill -HUP $MAINPID\n"))

    def test_one_worker_becomes_two(self):
        s = survey_of(unit_of("[Service]\nExecStart=/v/bin/gunicorn --workers 1 --bind unix:n.sock wsgi:app\n"), venv="/v", workers=[5])
        argv, workers = adopt.converted_argv(s, "/srv/n", None)
        self.assertEqual(workers, 2)
        self.assertEqual(argv[-3:], ["--workers", "2", "wsgi:app"])
        self.assertEqual(argv[0], "/v/bin/gunicorn")

    def test_no_workers_anywhere_is_two_and_a_computed_count_is_kept(self):
        s = survey_of(unit_of("[Service]\nExecStart=/v/bin/gunicorn wsgi:app\n"))
        self.assertEqual(adopt.workers_wanted(s), (2, True))
        s.gunicorn.settings["workers"] = adopt.UNKNOWN
        self.assertEqual(adopt.workers_wanted(s), (3, False))

    def test_paths_into_the_app_directory(self):
        with tempfile.TemporaryDirectory() as app:
            os.mkdir(os.path.join(app, "conf"))
            open(os.path.join(app, "conf", "g.py"), "w").close()
            unit = unit_of(f"[Service]\nExecStart=/v/bin/gunicorn -c conf/g.py --access-logfile logs/a.log --pythonpath lib,/opt/x --log-config {app}/log.ini --error-logfile - wsgi:app\n", WorkingDirectory=app)
            s = survey_of(unit, app_dir=app)
            argv, _ = adopt.converted_argv(s, "/srv/p", None)
        line = adopt.exec_line(argv, "unix:/s")
        self.assertIn("--config /srv/p/current/conf/g.py", line)  # read: from the release
        self.assertIn(f"--access-logfile {app}/logs/a.log", line)  # written: where it was
        self.assertIn("--pythonpath /srv/p/current/lib,/opt/x", line)
        self.assertIn("--log-config /srv/p/current/log.ini", line)
        self.assertIn("--error-logfile -", line)

    def test_a_socket_in_the_units_runtime_directory_is_kept(self):
        s = survey_of(unit_of(TUTORIAL_UNIT, RuntimeDirectory="myproject"), listens=[adopt.Listen("unix", "/run/myproject/g.sock")])
        self.assertEqual(adopt.socket_for(s), ("/run/myproject/g.sock", None))
        s = survey_of(unit_of(TUTORIAL_UNIT))
        self.assertEqual(adopt.socket_for(s)[1], "myproject")

    def test_systemd_quoting(self):
        self.assertEqual(adopt.systemd_quote("wsgi:app"), "wsgi:app")
        self.assertEqual(adopt.systemd_quote('a "b"'), '"a \\"b\\""')
        self.assertEqual(adopt.systemd_quote("100%"), "100%%")
        self.assertEqual(adopt.systemd_quote("$HOME"), '"$$HOME"')

    def test_paths_are_replaced_whole(self):
        self.assertEqual(adopt.replace_path("PATH=/a/venv/bin:/usr/bin", "/a/venv", "/s/venv"), "PATH=/s/venv/bin:/usr/bin")
        self.assertEqual(adopt.replace_path("/a/venv2/bin", "/a/venv", "/s/venv"), "/a/venv2/bin")
        self.assertEqual(adopt.replace_path('#!/a/venv/bin/python3\nVIRTUAL_ENV="/a/venv"', "/a/venv", "/s/v"), '#!/s/v/bin/python3\nVIRTUAL_ENV="/s/v"')


SITE = """# the app
upstream app_server {
    server unix:/run/shop.sock fail_timeout=0;   # Gunicorn
}
server {
    listen 80;
    location /static/ { alias /srv/static/; }
    location / {
        include proxy_params;
        # proxy_pass http://unix:/run/shop.sock;
        proxy_pass http://app_server;
    }
    location /direct { proxy_pass "http://unix:/var/run/shop.sock:/x"; }
    location /other { proxy_pass http://127.0.0.1:9000; }
}
"""


class Nginx(unittest.TestCase):
    listens = [adopt.Listen("unix", "/run/shop.sock")]

    def test_finds_the_upstream_and_direct_proxies_but_not_comments(self):
        edits, names = adopt.find_edits(SITE, self.listens)
        self.assertEqual(names, ["app_server"])
        self.assertEqual(sorted(e.kind for e in edits), ["proxy_pass", "upstream"])
        text = adopt.retarget(SITE, edits, "/run/shop/shop.sock")
        self.assertIn("    server unix:/run/shop/shop.sock fail_timeout=0;   # Gunicorn", text)
        self.assertIn('proxy_pass "http://unix:/run/shop/shop.sock:/x";', text)
        self.assertIn("# proxy_pass http://unix:/run/shop.sock;", text)
        self.assertIn("proxy_pass http://app_server;", text)
        self.assertIn("proxy_pass http://127.0.0.1:9000;", text)

    def test_tcp_binds_reach_each_loopback_name(self):
        tcp = [adopt.Listen("tcp", "127.0.0.1:8000")]
        for address in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000"):
            self.assertTrue(adopt.address_matches(address, tcp), address)
        self.assertFalse(adopt.address_matches("127.0.0.1:8001", tcp))
        self.assertFalse(adopt.address_matches("10.0.0.5:8000", tcp))
        self.assertTrue(adopt.address_matches("localhost:8000", [adopt.Listen("tcp", "0.0.0.0:8000")]))
        text = "location / { proxy_pass http://localhost:8000/; }"
        edits, _ = adopt.find_edits(text, tcp)
        self.assertEqual(adopt.retarget(text, edits, "/run/a/a.sock"), "location / { proxy_pass http://unix:/run/a/a.sock/; }")

    def test_refuses_an_upstream_shared_with_other_servers(self):
        text = "upstream u { server unix:/run/shop.sock; server 10.0.0.2:80; } server { location / { proxy_pass http://u; } }"
        with self.assertRaisesRegex(adopt.Refused, "balances over Gunicorn and other servers"):
            adopt.find_edits(text, self.listens)

    def test_reads_listening_sockets_from_ss(self):
        unix = "u_str LISTEN 0 2048 /run/myapp/myapp.sock 508336 * 0 users:((\"gunicorn\",pid=43,fd=5),(\"gunicorn\",pid=29,fd=5))\n"
        tcp = 'LISTEN 3 2048 127.0.0.1:8000 0.0.0.0:* users:(("gunicorn",pid=7,fd=5))\n'
        [(sock, pids)] = adopt.parse_ss(unix, "unix")
        self.assertEqual((sock.address, sock.queue, pids), ("/run/myapp/myapp.sock", 0, [43, 29]))
        [(sock, pids)] = adopt.parse_ss(tcp, "tcp")
        self.assertEqual((sock.address, sock.queue, sock.host, sock.port, pids), ("127.0.0.1:8000", 3, "127.0.0.1", 8000, [7]))


class AppDirectory(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        for name in ("wsgi.py", ".env", "app.db", "requirements.txt"):
            open(os.path.join(self.dir, name), "w").close()
        for name in ("instance", "static", "__pycache__", ".git", "venv", "old-venv"):
            os.mkdir(os.path.join(self.dir, name))
        open(os.path.join(self.dir, "old-venv", "pyvenv.cfg"), "w").close()
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(os.path.join(self.dir, "app.sock"))

    def tearDown(self):
        self.sock.close()
        shutil.rmtree(self.dir)

    def test_code_is_copied_data_and_secrets_are_shared_the_rest_left_out(self):
        entries, _ = adopt.classify(self.dir, os.path.join(self.dir, "venv"), ["static"])
        kinds = {e.name: e.kind for e in entries}
        self.assertEqual(kinds, {
            ".env": "shared", ".git": "skip", "__pycache__": "skip", "app.db": "shared", "app.sock": "skip",
            "instance": "shared", "old-venv": "skip", "requirements.txt": "code", "static": "shared", "venv": "skip",
            "wsgi.py": "code",
        })

    def test_a_shared_name_that_does_not_exist_is_refused(self):
        with self.assertRaisesRegex(adopt.Refused, "--shared uploads"):
            adopt.classify(self.dir, None, ["uploads"])


class Venv(unittest.TestCase):
    def test_a_copied_venv_runs_from_its_new_path(self):
        root = tempfile.mkdtemp()
        try:
            src, dst = os.path.join(root, "app", "venv"), os.path.join(root, "srv", "venv")
            os.makedirs(os.path.join(src, "bin"))
            os.makedirs(os.path.dirname(dst))
            with open(os.path.join(src, "pyvenv.cfg"), "w") as fh:
                fh.write(f"home = {os.path.dirname(sys.executable)}\ncommand = python3 -m venv {src}\n")
            os.symlink(sys.executable, os.path.join(src, "bin", "python"))
            with open(os.path.join(src, "bin", "gunicorn"), "w") as fh:
                fh.write(f"#!{src}/bin/python\nimport sys\n")
            changed = adopt.copy_venv(src, dst, pwd.getpwuid(os.getuid()))
            self.assertEqual(changed, 2)
            with open(os.path.join(dst, "bin", "gunicorn")) as fh:
                self.assertEqual(fh.readline().strip(), f"#!{dst}/bin/python")
            with open(os.path.join(src, "bin", "gunicorn")) as fh:
                self.assertEqual(fh.readline().strip(), f"#!{src}/bin/python")
        finally:
            shutil.rmtree(root)

    def test_an_editable_install_of_the_app_is_found(self):
        root = tempfile.mkdtemp()
        try:
            site = os.path.join(root, "venv", "lib", "python3.11", "site-packages")
            os.makedirs(site)
            with open(os.path.join(site, "__editable__.myproject-1.0.pth"), "w") as fh:
                fh.write("/home/app/myproject/src\n")
            self.assertEqual(adopt.editable_installs(os.path.join(root, "venv"), "/home/app/myproject"), [os.path.join(site, "__editable__.myproject-1.0.pth")])
            self.assertEqual(adopt.editable_installs(os.path.join(root, "venv"), "/srv/other"), [])
        finally:
            shutil.rmtree(root)


class Sudoers(unittest.TestCase):
    def test_the_kit_file_for_this_user_and_unit(self):
        text = adopt.sudoers_text("shipit", "myproject")
        rule = [line for line in text.splitlines() if not line.startswith("#")][0]
        self.assertTrue(rule.startswith("shipit ALL=(root) NOPASSWD: "), rule)
        self.assertIn("systemctl reload myproject, ", rule)
        self.assertIn("systemctl restart myproject, ", rule)
        self.assertNotIn("myapp", text)


if __name__ == "__main__":
    unittest.main()
