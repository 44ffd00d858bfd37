"""The browser demo (app.py): its answers and refusals, the page in a real headless browser, 32 requests at once
through gradio_client, and its upload as a Space to the stand-in Hub."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from conftest import ROOT, run_main, run_script
from hub_server import HubServer

TOKEN = "hf_test_token_do_not_print"


@pytest.fixture(scope="module")
def adder(tiny_run):
    import app
    return app.Adder(str(tiny_run / "model"))


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    """app.py serving the tiny model on a free local port, as `make demo` starts it: (url, process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("demo") / "app.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--model", str(tiny_run / "model"),
                                 "--host", "127.0.0.1", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=log.parent)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"app.py exited {proc.returncode}: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"app.py did not serve {url} within 120 s: {log.read_text()[-2000:]}"
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ---------------------------------------------------------------- the answer function

def test_answers_in_decimal_and_hex_with_the_models_own_text(adder):
    assert adder.answer("12+34") == ("12+34=46", "the model wrote 64+ (base 10, least significant digit first); right; "
                                                 "verified decoding, 2 forward passes")
    shown, how = adder.answer(" 0x3F + 0x1 ")
    assert shown == "0x3F+0x1=0x40" and how.startswith("the model wrote 46+ ")
    from hexadd.inference.decoding import decode
    (ans,) = decode(adder.model, adder.tok, [(99, 1)], "verified")
    assert adder.answer("99+1")[0] == f"99+1={ans.value}" and f"the model wrote {ans.text} " in adder.answer("99+1")[1]


@pytest.mark.parametrize("text", ["12+abc", "abc", "-3+4", "5-3", "1.5+2", "1+2+3", "", "   ", "1" * 30_000 + "+1",
                                  "100+1", "9" * 19_000 + "+1"])
def test_bad_input_gets_the_clis_one_line_message(adder, tiny_run, tmp_path, text):
    t0 = time.perf_counter()
    shown, how = adder.answer(text)
    assert time.perf_counter() - t0 < 1, "refused up front, before any decoding"
    assert shown.startswith("error: ") and "\n" not in shown and how == ""
    cli = run_main("inference.py", "--model", str(tiny_run / "model"), text, cwd=tmp_path)
    assert cli.returncode == 2
    # The same words; only the CLI offers its --allow-out-of-range.
    assert cli.stderr.strip().removesuffix("; use --allow-out-of-range to answer anyway") == shown
    assert adder.attention(text) is None and adder.attention_image(text) == ""


def test_operands_longer_than_the_page_answers_are_refused(adder, monkeypatch):
    import app
    monkeypatch.setattr(app, "LONGEST", 1)
    assert adder.answer("12+3") == ("error: an operand of 2 base-10 digits: this page answers up to 1 "
                                    "(inference.py answers longer ones)", "")


def test_attention_figure_has_every_layer_and_head(adder):
    from hexadd.inference.attention import attention_of
    fig = adder.attention("12+34")
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 2 * 4  # the tiny model: 2 layers, 4 heads
    assert fig.get_suptitle().startswith("12+34=46   as the model reads it: +21+43+64+")
    maps = attention_of(adder.model, adder.tok, 12, 34).attentions
    assert (panels[5].images[0].get_array() == maps[1][1].numpy()).all()  # row 2 (layer 2), column 2 (head 2)
    html = adder.attention_image("12+34")
    assert html.startswith('<img src="data:image/png;base64,iVBORw0KGgo')  # a PNG


def test_the_page_shows_the_certificate_from_the_model_card(adder, tiny_run):
    import json
    cert = json.loads((tiny_run / "model/certificate.json").read_text())
    assert adder.results.startswith(f"**Certificate:** {cert['n'] - cert['wrong']:,} of {cert['n']:,} problems right")
    assert "held-out problems" in adder.results and "## Use" not in adder.results
    assert adder.examples() == ["99+1", "12+34", "0x3F+0x1"]  # the ones within 0..99


# ---------------------------------------------------------------- the page in a browser

def chromium():
    """Headless Chromium from the OS packages, through the OS's chromedriver: nothing is downloaded. Without one the
    test is skipped, on CI failed, with one line saying why."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    def unavailable(why):
        message = f"no headless browser: {why} (`make browser` installs chromium and chromium-driver)"
        pytest.fail(message, pytrace=False) if os.environ.get("CI") else pytest.skip(message)

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        unavailable("chromium or chromedriver is not on PATH")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(arg)
    try:
        return webdriver.Chrome(service=Service(driver), options=options)
    except WebDriverException as e:
        unavailable(str(e.msg or e).strip().splitlines()[0])


def test_the_page_in_a_browser(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = server
    browser = chromium()
    try:
        wait = WebDriverWait(browser, 30)
        browser.get(url)
        box = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#problem input"))
        assert "Certificate:" in browser.find_element(By.ID, "results").text

        def answer():
            return browser.find_element(By.CSS_SELECTOR, "#answer textarea").get_attribute("value")

        box.send_keys("12+34")
        browser.find_element(By.ID, "add").click()
        wait.until(lambda b: answer())
        assert answer() == "12+34=46"
        how = browser.find_element(By.CSS_SELECTOR, "#how textarea").get_attribute("value")
        assert "the model wrote 64+" in how and "verified decoding, 2 forward passes" in how
        img = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#attention img"))
        wait.until(lambda b: b.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img))
        assert img.size["width"] > 0 and img.size["height"] > 0
        browser.save_screenshot(str(tmp_path / "demo.png"))

        box.clear()
        box.send_keys("12+abc", Keys.ENTER)
        wait.until(lambda b: answer().startswith("error: "))
        assert answer() == "error: '12+abc': 'abc' is not a non-negative integer (decimal, or hexadecimal as 0x1F)"
        wait.until(lambda b: not b.find_elements(By.CSS_SELECTOR, "#attention img"))  # no figure for no problem
        browser.save_screenshot(str(tmp_path / "demo-error.png"))
    finally:
        browser.quit()
    for shot in ("demo.png", "demo-error.png"):
        assert (tmp_path / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- under load

def rss_mb(pid: int) -> float:
    status = open(f"/proc/{pid}/status").read()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024


def test_32_requests_at_once_are_all_answered_in_flat_memory(server, adder):
    """Each round a new visitor sends 32 requests at once, every one answered, right. The first round draws 12
    figures, enough for the server to reach its working size; two more rounds of 28 sums, 3 figures and one
    enormous problem (refused up front) then leave its memory where it was. With the model run on Gradio's own
    threads instead of a fixed pool, it grew by 20 MB a round."""
    from gradio_client import Client

    url, proc = server
    problems = [f"{i}+{(37 * i + 11) % 100}" for i in range(28)]
    expected = {p: adder.answer(p) for p in problems}
    enormous = "9" * 19_000 + "+1"
    memory = []
    for sums, figures, refused in ((20, 12, 0), (28, 3, 1), (28, 3, 1)):
        client = Client(url, verbose=False)
        jobs = [(p, "/add", client.submit(p, api_name="/add")) for p in problems[:sums]]
        jobs += [(p, "/attention", client.submit(p, api_name="/attention")) for p in problems[:figures]]
        jobs += [(enormous, "/add", client.submit(enormous, api_name="/add")) for _ in range(refused)]
        assert len(jobs) == 32
        for p, api, job in jobs:
            out = job.result(timeout=120)
            if api == "/attention":
                assert out.startswith('<img src="data:image/png;base64,')
            elif p is enormous:
                assert out[0] == f"error: {enormous}: this model was trained on operands 0..99"
            else:
                assert tuple(out) == expected[p]
        client.close()
        memory.append(rss_mb(proc.pid))
    assert memory[-1] - memory[0] < 20, f"the server's memory grew: {[int(m) for m in memory]} MB"


# ---------------------------------------------------------------- as a Space

def test_push_space_uploads_a_space_that_runs_from_its_own_files(tiny_run, tmp_path):
    model_dir = tiny_run / "model"
    with HubServer(tokens={TOKEN}) as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf_home"), "HF_TOKEN": "",
               "HF_HUB_DISABLE_TELEMETRY": "1"}
        proc = run_script("hexadd.hub", "push-space", "tester/adder-demo", "--model", str(model_dir), cwd=tmp_path,
                          env=env, module=True)
        assert proc.returncode == 2 and proc.stderr.startswith("error: not logged in") and proc.stderr.count("\n") == 1
        assert hub.repos() == []
        env["HF_TOKEN"] = TOKEN
        proc = run_script("hexadd.hub", "push-space", "tester/adder-demo", "--model", str(model_dir), cwd=tmp_path,
                          env=env, module=True)
        assert proc.returncode == 0, proc.stderr
        assert TOKEN not in proc.stdout + proc.stderr
        assert hub.sdk("spaces/tester/adder-demo") == "gradio"
        files = hub.files("spaces/tester/adder-demo")
        assert files["app.py"] == (ROOT / "app.py").read_bytes()
        assert files["hexadd/data/numbers.py"] == (ROOT / "hexadd/data/numbers.py").read_bytes()
        for name in ("config.json", "model.safetensors", "tokenizer.json", "certificate.json", "eval_results.json"):
            assert files[f"model/{name}"] == (model_dir / name).read_bytes(), name
        front = yaml.safe_load(files["README.md"].decode().split("---")[1])
        demo_pins = dict(line.split("==") for line in (ROOT / "requirements-demo.txt").read_text().split())
        assert front["sdk"] == "gradio" and front["app_file"] == "app.py" and front["sdk_version"] == demo_pins["gradio"]
        requirements = files["requirements.txt"].decode().split()
        assert "torch==2.13.0" in requirements and not any(r.startswith(("pytest", "selenium")) for r in requirements)

        # The Space's own files, without this checkout on the path: its package, its model in model/ (app.py's
        # default). From there the model also goes to a model repo, and app.py loads it by repo id, card and all.
        space = tmp_path / "space"
        for path, data in files.items():
            (space / path).parent.mkdir(parents=True, exist_ok=True)
            (space / path).write_bytes(data)
        script = ("import os, app, hexadd\n"
                  "from hexadd.hub.publish import push\n"
                  "assert hexadd.__file__.startswith(os.getcwd()), hexadd.__file__\n"
                  "local = app.Adder('model')\n"
                  "push('model', 'tester/tiny-adder', log=lambda line: None)\n"
                  "remote = app.Adder('tester/tiny-adder')\n"
                  "print(local.answer('12+34')[0], remote.answer('12+34')[0], local.results == remote.results,\n"
                  "      remote.results.startswith('**Certificate:**'))\n")
        clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        ran = subprocess.run([sys.executable, "-c", script], cwd=space, capture_output=True, text=True,
                             env={**clean, **env}, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[-1] == "12+34=46 12+34=46 True True"
