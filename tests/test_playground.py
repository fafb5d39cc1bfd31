"""The playground: its engine side directly, and the whole thing end to end in a
real headless Chromium (Debian's, which .ci/run installs) driven by Playwright,
against ``nnscratch playground`` started as a user would start it."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import nnscratch as nn
from nnscratch.explain import explain
from nnscratch.playground import Session, SettingsError
from nnscratch.playground.datasets import GENERATORS, DataError, generate, read_csv
from nnscratch.playground.session import features

SPIRAL = {"dataset": "spiral", "features": ["x1", "x2", "sin(x1)", "sin(x2)"], "optimizer": "adam",
          "layers": [{"units": 8, "activation": "tanh"}, {"units": 8, "activation": "tanh"}]}  # fmt: skip


# --- the engine side ---------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_every_dataset_fills_the_square_and_repeats_by_seed(name):
    X, y = generate(name, 300, 0.2, seed=4)
    again, _ = generate(name, 300, 0.2, seed=4)
    assert X.shape == (300, 2) and np.abs(X).max() <= 6 and np.array_equal(X, again)
    if name in ("plane", "bumps"):
        assert y.min() >= -1 and y.max() <= 1 and np.unique(y).size > 50
    else:
        assert set(np.unique(y)) == {0, 1}


@pytest.mark.parametrize(
    "change,message",
    [
        ({"dataset": "mnist"}, r"dataset must be 'circle', .*Received dataset='mnist'"),
        ({"noise": 80}, r"noise must be a whole number in \[0, 50\]\. Received noise=80"),
        ({"learning_rate": -1}, r"learning_rate must lie in \[1e-06, 10\]\. Received learning_rate=-1"),
        ({"layers": [{"units": 9, "activation": "tanh"}]}, r"units must be a whole number in \[1, 8\]"),
        ({"layers": [{"units": 2, "activation": "tanh"}] * 7}, "at most 6 hidden layers"),
        ({"features": []}, "features must list one or more"),
        ({"features": ["x3"]}, "features must list one or more"),
        ({"optimizer": "lbfgs"}, r"optimizer must be 'sgd', .*Received optimizer='lbfgs'"),
        ({"colour": "red"}, r"unknown setting\(s\) \['colour'\]"),
    ],
)
def test_bad_settings_get_a_sentence_and_change_nothing(change, message):
    session = Session(SPIRAL)
    before = session.network.parameters.snapshot()
    with pytest.raises(SettingsError, match=message):
        session.configure({**SPIRAL, **change})
    assert session.settings["dataset"] == "spiral"
    np.testing.assert_array_equal(session.network.parameters.snapshot(), before)


def test_learning_rate_changes_live_and_architecture_rebuilds():
    session = Session(SPIRAL)
    session.train_epoch()
    weights = session.network.parameters.snapshot()
    session.configure({**SPIRAL, "learning_rate": 0.1})
    assert session.epoch == 1 and session.network.optimizer.learning_rate == 0.1
    np.testing.assert_array_equal(session.network.parameters.snapshot(), weights)
    session.configure({**SPIRAL, "learning_rate": 0.1, "layers": [{"units": 3, "activation": "relu"}]})
    assert session.epoch == 0 and [layer.n_out for layer in session.network.layers] == [3, 1]


def test_csv_classes_regression_and_refusals():
    rng = np.random.default_rng(0)
    rows = "\n".join(f"{x:.3f},{y:.3f},{c}" for (x, y), c in zip(rng.normal(size=(60, 2)), "abc" * 20, strict=True))
    X, y, problem, classes = read_csv("x1,x2,label\n" + rows)
    assert problem == "classification" and classes == ["a", "b", "c"] and X.shape == (60, 2)
    assert np.abs(X).max() <= 6 and set(y) == {0, 1, 2}
    _, target, problem, _ = read_csv("\n".join(f"{i},{i * 2},{i * 0.37}" for i in range(20)))
    assert problem == "regression" and target.min() == -1 and target.max() == 1
    refused = [
        ("1,2,a\n3,4,a\n5,6,a\n7,8,a", "one class only"),
        ("1,2\n3,4\n5,6\n7,8", r"row\(s\) \[1, 2, 3"),
        ("1,2,a", "needs at least 4 rows"),
        ("x" * 1_000_001, "takes up to 1,000,000"),
        ("1,nan,a\n1,2,b\n3,4,a\n5,6,b", "finite"),
        # issue 29, class 1: the limits of the file are sentences too (a csv.Error escaped; 1e308 became NaN)
        ("x1,x2,t\n" + "7" * 200_000 + ",1,a\n1,2,b\n3,4,a\n5,6,b", r"cannot be read \(field larger than"),
        ("1,2,a\n1,2,\x00b\n3,4,a\n5,6,b", "NUL bytes"),
        ("1e308,1e308,a\n-1e308,1,b\n3,4,a\n5,6,b", "span more than the playground can scale"),
    ]
    for text, message in refused:
        with pytest.raises(DataError, match=message):
            read_csv(text)


def test_three_classes_from_a_csv_train_a_softmax_network():
    rng = np.random.default_rng(1)
    centres = np.array([[-3, -3], [3, -3], [0, 3]])
    rows = [f"{x:.3f},{y:.3f},{k}" for k in range(3) for x, y in centres[k] + rng.normal(size=(30, 2))]
    session = Session({"optimizer": "adam", "learning_rate": 0.03})
    session.load_csv("\n".join(rows))
    assert session.classes == ["0", "1", "2"] and session.network.loss.registry_name == "cross_entropy"
    for _ in range(30):
        session.train_epoch()
    assert session.curve[-1][0] < 0.3
    assert session.frame()["surface"]["kind"] == "classes"


def test_explain_is_nnscratch_explain_on_the_same_state():
    session = Session(SPIRAL)
    for _ in range(3):
        session.train_epoch()
    shown = session.explain(1.0, 2.0)
    point = np.array(shown["point"])
    i = int(np.argmin(((session.X_train - point) ** 2).sum(axis=1)))
    ref = explain(session.network, features(point[None], SPIRAL["features"])[0],
                  session.y_train[i : i + 1].reshape(1, 1)[0], 0.03)  # fmt: skip
    assert shown["cost"] == ref.cost and shown["cost_updated"] == ref.cost_updated
    for got, want in zip(shown["layers"], ref.layers, strict=True):
        np.testing.assert_array_equal(got["dC_dW"], want.dC_dW)
        np.testing.assert_array_equal(got["W_updated"], want.W_updated)


def test_exported_code_rebuilds_the_same_network_and_the_file_loads():
    session = Session({**SPIRAL, "schedule": "cosine", "regularization": "l2", "reg_rate": 0.001})
    for _ in range(4):
        session.train_epoch()
    namespace: dict = {}
    exec(session.code(), namespace)  # what the page's "Download Python" gives
    np.testing.assert_array_equal(namespace["net"].parameters.values, session.network.parameters.values)
    blob = base64.b64decode(session.export()["model"])
    assert blob[8:].lstrip().startswith(b"{")  # a safetensors header
    frame = session.frame()
    assert len(frame["neurons"]) == 2 and all(len(layer) == 8 for layer in frame["neurons"])
    assert len(base64.b64decode(frame["neurons"][0][0])) == 40 * 40


# --- end to end in a real browser -------------------------------------------------
def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def server():
    process = subprocess.Popen([sys.executable, "-m", "nnscratch", "playground", "--no-browser", "--max-rate", "30"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    line = process.stdout.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
    assert match, f"no address announced: {line!r}"
    yield match.group(1)
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = _chromium()
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


def _status(url: str) -> dict:
    """The server's own count of pages and players (loopback only)."""
    host, port = re.match(r"http://([\d.]+):(\d+)/", url).groups()
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("GET", "/status")
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def _drawn_colours(page, selector: str) -> int:
    """Distinct colours in a canvas's pixels (a blank or one-colour canvas has 1)."""
    return page.evaluate(f"""(() => {{
        const c = document.querySelector({json.dumps(selector)});
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const seen = new Set();
        for (let i = 0; i < d.length; i += 4) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        return seen.size;
    }})()""")


def test_the_page_trains_the_spiral_and_draws_every_neuron(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(server + "#dataset=spiral&features=x1,x2,sin(x1),sin(x2)&layers=8:tanh,8:tanh&optimizer=adam"
              "&learning_rate=0.03")  # fmt: skip
    page.wait_for_function("window.playground.stats.frames > 0", timeout=20_000)
    page.click("#play")
    page.wait_for_function("window.playground.frame.curve[1] !== null && window.playground.frame.curve[1] < 0.25",
                           timeout=90_000)  # fmt: skip
    page.click("#play")  # pause
    deadline = time.monotonic() + 10
    while _status(server)["playing"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _status(server)["playing"] == 0
    assert _drawn_colours(page, "#output") > 50
    for i in range(2):
        for j in range(8):
            assert _drawn_colours(page, f"#neuron-{i}-{j}") > 5, f"neuron {i}-{j} is not drawn"
    assert "bias" in page.get_attribute("#neuron-0-0", "title")
    assert page.locator("#links line").count() == 4 * 8 + 8 * 8 + 8
    assert "weight" in page.locator("#links line title").first.text_content()
    page.screenshot(path=str(tmp_path / "spiral.png"), full_page=True)
    assert errors == []
    page.close()


def test_the_url_holds_the_setup_and_a_reload_restores_it(server, browser):
    page = browser.new_page()
    page.goto(server + "#dataset=xor&layers=3:relu&features=x1,x2,x1*x2&show_test=1&discretize=1")
    page.wait_for_function("window.playground.stats.frames > 0", timeout=20_000)
    assert page.locator("#hidden .layer").count() == 1 and page.locator("#hidden canvas").count() == 3
    page.click("#add-layer")
    page.wait_for_function("location.hash.includes('layers=3%3Arelu%2C2%3Atanh')", timeout=10_000)
    page.reload()
    page.wait_for_function("window.playground.frame && window.playground.frame.weights.length === 3", timeout=20_000)
    assert page.is_checked("#show_test") and page.is_checked("#discretize")
    assert page.locator("#hidden .layer").count() == 2
    assert page.input_value("#learning_rate") == "0.03"
    page.close()


def test_a_csv_with_three_classes_and_a_bad_csv(server, browser, tmp_path):
    rng = np.random.default_rng(2)
    rows = ["x1,x2,kind"] + [f"{x:.3f},{y:.3f},{name}" for name, (cx, cy) in
                             (("red", (-2, -2)), ("green", (2, -2)), ("blue", (0, 2))) for x, y in
                             (cx, cy) + rng.normal(scale=0.5, size=(40, 2))]  # fmt: skip
    good, bad = tmp_path / "three.csv", tmp_path / "bad.csv"
    good.write_text("\n".join(rows))
    bad.write_text("x1,x2,y\n1,2\n3,4\n5,6\n7,8\n")
    page = browser.new_page()
    page.goto(server)
    page.wait_for_function("window.playground.stats.frames > 0", timeout=20_000)
    page.set_input_files("#csv", str(good))
    page.wait_for_function("window.playground.frame && window.playground.frame.surface.kind === 'classes'",
                           timeout=20_000)  # fmt: skip
    assert page.locator("#legend span").all_text_contents() == ["blue", "green", "red"]
    page.set_input_files("#csv", str(bad))
    page.wait_for_function("document.getElementById('error').textContent.length > 0", timeout=10_000)
    assert "x1,x2,target" in page.text_content("#error")
    page.close()


def test_explain_panel_shows_nnscratch_explain_on_the_exported_network(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server + "#dataset=circle&layers=4:tanh,2:tanh&learning_rate=0.1")
    page.wait_for_function("window.playground.stats.frames > 0", timeout=20_000)
    for _ in range(3):
        page.click("#step")
    page.wait_for_function("window.playground.frame.epoch === 3", timeout=10_000)
    page.click("#output", position={"x": 200, "y": 120})
    page.wait_for_function("window.playground.stats.lastExplain !== null", timeout=10_000)
    with page.expect_download() as download:
        page.click("#export-model")
    model_file = download.value.path()
    net = nn.load(model_file)
    shown = page.evaluate("window.playground.stats.lastExplain")
    ref = explain(net, np.array(shown["x"]), np.array(shown["target"]), shown["learning_rate"])
    assert float(page.get_attribute("#explain-cost", "data-v")) == pytest.approx(ref.cost, rel=1e-12)
    assert float(page.get_attribute("#explain-cost-updated", "data-v")) == pytest.approx(ref.cost_updated, rel=1e-12)
    for i, layer in enumerate(ref.layers):
        for key in ("z", "a", "dC_dz", "dC_dW", "W_updated", "b_updated"):
            cell = page.locator(f'table[data-layer="{i}"] tr[data-key="{key}"] td')
            np.testing.assert_allclose(json.loads(cell.get_attribute("data-v")), getattr(layer, key), rtol=1e-12)
    with page.expect_download() as download:
        page.click("#export-code")
    assert "nn.Network" in Path(download.value.path()).read_text()
    page.close()


def test_closing_the_page_stops_its_training(server, browser):
    page = browser.new_page()
    page.goto(server)
    page.wait_for_function("window.playground.stats.frames > 0", timeout=20_000)
    page.click("#play")
    page.wait_for_function("window.playground.stats.frames > 5", timeout=20_000)
    assert _status(server)["playing"] >= 1
    page.close()
    deadline = time.monotonic() + 10
    while _status(server)["pages"] and time.monotonic() < deadline:
        time.sleep(0.1)
    status = _status(server)
    assert (status["pages"], status["playing"]) == (0, 0)


BLOW_UP = "#dataset=plane&optimizer=sgd&learning_rate=10&features=x1,x2,x1^2,x2^2,x1*x2&layers=8:relu,8:relu,8:relu"


def test_training_that_blows_up_says_so_and_the_page_goes_on(server, browser):
    """A real blow-up (SGD at 10 on the plane) stops play with the reason on the page and the
    button back to play; the one-step button gets the same sentence instead of a dropped
    connection; a sane learning rate then trains again in the same page."""
    page = browser.new_page()
    page.goto(server + BLOW_UP)
    page.wait_for_function("window.playground.stats.frames > 0", timeout=20_000)
    page.click("#play")
    page.wait_for_function("document.getElementById('error').textContent.includes('Training stopped')",
                           timeout=20_000)  # fmt: skip
    assert "lower learning rate" in page.text_content("#error")
    assert not page.evaluate("document.getElementById('play').classList.contains('playing')")
    assert _status(server)["playing"] == 0
    page.evaluate("document.getElementById('error').textContent = ''")
    page.click("#step")
    page.wait_for_function("document.getElementById('error').textContent.includes('Training stopped')",
                           timeout=20_000)  # fmt: skip
    assert "connection" not in page.text_content("#error") and _status(server)["pages"] >= 1
    page.select_option("#learning_rate", "0.03")
    page.wait_for_function("document.getElementById('error').textContent === ''", timeout=10_000)
    frames = page.evaluate("window.playground.stats.frames")
    page.click("#play")
    page.wait_for_function(f"window.playground.stats.frames > {frames + 10}", timeout=20_000)
    page.click("#play")
    assert "Training stopped" not in page.text_content("#error")
    page.close()


def test_the_page_past_the_limit_keeps_the_servers_reason(server, browser):
    """The ninth page hears "at most 8 pages" and keeps it, not "restart the server"."""
    from nnscratch.playground.server import MAX_SESSIONS

    pages = [browser.new_page() for _ in range(MAX_SESSIONS)]
    try:
        for page in pages:
            page.goto(server)
            page.wait_for_function("window.playground.stats.frames > 0", timeout=20_000)
        extra = browser.new_page()
        extra.goto(server)
        extra.wait_for_function("document.getElementById('error').textContent !== ''", timeout=20_000)
        time.sleep(0.5)  # the close that follows the refusal must not overwrite it
        text = extra.text_content("#error")
        assert f"at most {MAX_SESSIONS} pages" in text and "Restart" not in text
        extra.close()
    finally:
        for page in pages:
            page.close()


def test_frames_the_server_cannot_take_get_a_sentence_and_the_page_stays(server):
    """A binary frame, a message nested 100,000 deep, a JSON array, an unknown type and a number
    out of range: each gets an error sentence back, and the same connection then trains."""
    from websockets.sync.client import connect

    url = server.replace("http://", "ws://") + "ws"
    deadline = time.monotonic() + 20
    while True:  # the address is announced just before the server listens
        try:
            _status(server)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with connect(url, max_size=None) as socket:

        def answer(frame) -> dict:
            socket.send(frame)
            while True:
                message = json.loads(socket.recv(timeout=20))
                if message["type"] in ("error", "frame"):
                    return message

        frames = [
            b"\x00\x01binary",
            "[" * 100_000 + "]" * 100_000,
            "[1, 2]",
            json.dumps({"type": "dance"}),
            json.dumps({"type": "settings", "settings": {"learning_rate": 1e9}}),
        ]
        sentences = [answer(frame)["message"] for frame in frames]
        assert "binary frame of 8 bytes" in sentences[0]
        assert "nested too deeply" in sentences[1]
        assert "JSON objects; received list" in sentences[2]
        assert "unknown message type 'dance'" in sentences[3]
        assert "learning_rate" in sentences[4]
        assert answer(json.dumps({"type": "step"}))["type"] == "frame"  # the session is still usable


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_the_largest_network_never_covers_the_output_panel(server, browser, size):
    """Six hidden layers of eight (the most the page allows) at 1280x720 and 1920x1080: every
    neuron is either left of the output panel or scrolled out of sight inside the network's
    own panel, which itself ends before the output panel (checked from the DOM)."""
    width, height = size
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(server + "#dataset=spiral&features=x1,x2&layers=" + ",".join(["8:tanh"] * 6))
    page.wait_for_function("document.querySelectorAll('#hidden .layer').length === 6 && window.playground.frame",
                           timeout=20_000)  # fmt: skip
    layout = page.evaluate("""(() => {
        const box = (el) => el.getBoundingClientRect();
        const scroll = box(document.getElementById('network-scroll'));
        const output = box(document.getElementById('output-column'));
        const neurons = [...document.querySelectorAll('#hidden canvas')].map(box);
        const overlapping = neurons.filter((r) => r.right > output.left && r.left < scroll.right).length;
        return {scrollRight: scroll.right, outputLeft: output.left, neurons: neurons.length, overlapping};
    })()""")
    assert layout["neurons"] == 48 and layout["scrollRight"] <= layout["outputLeft"], layout
    assert layout["overlapping"] == 0, layout
    page.close()


def _explained(server: str, browser):
    """A 1280x720 page on XOR whose output was clicked: an explanation shown."""
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.goto(server + "#dataset=xor&features=x1,x2&layers=2:tanh&learning_rate=0.3")
    page.wait_for_function("window.playground.stats.frames > 0", timeout=20_000)
    page.click("#output", position={"x": 60, "y": 60})
    page.wait_for_function("window.playground.stats.lastExplain", timeout=20_000)
    return page


def test_the_explanation_scrolls_into_view_at_1280x720(server, browser):
    page = _explained(server, browser)
    page.wait_for_function("""(() => { const r = document.getElementById('explain').getBoundingClientRect();
                               return r.top >= -1 && r.top < window.innerHeight; })()""", timeout=10_000)  # fmt: skip
    page.close()


def test_an_old_explanation_goes_when_the_data_change(server, browser):
    """An explanation (and its ring) of the old data used to stay after the data changed."""
    page = _explained(server, browser)
    assert page.locator("#explain-body table").count() > 0
    page.click("#datasets button:nth-child(1)")  # another data set
    page.wait_for_function("window.playground.stats.lastExplain === null", timeout=20_000)
    assert page.locator("#explain-body table").count() == 0
    page.close()
