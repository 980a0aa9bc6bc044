"""The GDL session layer, both backends: values, errors, timeouts and crashes."""

import os
import subprocess
import sys

import numpy as np
import pytest

from ulyss_ann.gdl.process import GDLError
from ulyss_ann.gdl.session import SubprocessGDLSession, open_session

pytestmark = pytest.mark.gdl

HELPERS = {
    "sess_twice.pro": "function sess_twice, x, k\nreturn, 2d * x + k\nend\n",
    "sess_name.pro": "function sess_name, s\nreturn, strupcase(s) + '!'\nend\n",
    "sess_spin.pro": "function sess_spin, x\nwhile 1 do x = x + 1\nreturn, x\nend\n",
    "sess_exit.pro": "function sess_exit, x\nexit\nend\n",
    "sess_fail.pro": "function sess_fail, x\nreturn, x[100000]\nend\n",
}


@pytest.fixture(scope="module")
def helpers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pro")
    for name, text in HELPERS.items():
        (folder / name).write_text(text)
    return folder


def test_subprocess_values_errors_timeout_and_crash(helpers):
    session = SubprocessGDLSession([helpers], timeout=3)
    try:
        x = np.linspace(0, 1, 5000)
        np.testing.assert_array_equal(session.call("sess_twice", x, 3), 2 * x + 3)  # exact, binary transfer
        assert session.call("sess_name", "it's") == "IT'S!"
        with pytest.raises(GDLError, match="out of range"):
            session.call("sess_fail", x)
        assert session.call("sess_twice", 1.5, 0)[0] == 3.0  # the same session goes on
        with pytest.raises(GDLError, match="did not answer within 3 s"):
            session.call("sess_spin", 1.0)
        assert session.call("sess_twice", 2.0, 1)[0] == 5.0  # restarted
        with pytest.raises(GDLError, match="gdl exited"):
            session.call("sess_exit", 1.0)
        assert session.call("sess_twice", 2.0, 2)[0] == 6.0  # restarted again
    finally:
        session.close()


@pytest.mark.pygdl
def test_pygdl_gives_the_same_values_in_a_fresh_process(helpers):
    code = f"""
import numpy as np
from ulyss_ann.gdl.session import open_session
from ulyss_ann.gdl.process import GDLError
s = open_session([{str(helpers)!r}], backend="pygdl")
x = np.linspace(0, 1, 5000)
assert np.array_equal(s.call("sess_twice", x, 3), 2 * x + 3)
assert s.call("sess_name", "abc") == "ABC!"
try:
    s.call("sess_fail", x)
except GDLError as exc:
    assert "out of range" in str(exc)
else:
    raise SystemExit("no error")
assert s.call("sess_twice", 1.5, 0)[0] == 3.0
print("PYGDL OK")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0 and "PYGDL OK" in result.stdout, result.stdout + result.stderr


def test_auto_prefers_the_subprocess_when_gdl_is_installed(helpers):
    with open_session([helpers]) as session:
        assert session.backend == "subprocess"
    with pytest.raises(ValueError, match="backend must be one of"):
        open_session([helpers], backend="idl")


@pytest.mark.pygdl
@pytest.mark.parametrize("users", [None, "ACTIVE"])
def test_gdl_is_imported_with_its_openmp_threads_passive_unless_the_user_says(users):
    # libgomp reads OMP_WAIT_POLICY once, when GDL loads it: the variable must be set before, and a
    # value of the user's own kept (scripts/bench_pygdl measures what it saves: a spinning core)
    probe = ("import os\n"
             "def gomp():\n"
             "    return 'libgomp' in open('/proc/self/maps').read()\n"
             "before = gomp()\n"
             "from ulyss_ann.gdl.session import import_gdl\n"
             "import_gdl()\n"
             "print(before, gomp(), os.environ.get('OMP_WAIT_POLICY'))\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if users:
        env["OMP_WAIT_POLICY"] = users
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", users or "PASSIVE"]
