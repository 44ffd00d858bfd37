#!/usr/bin/env python3
"""How soon the demo page shows the sum: app.py on a free local port, the OS's headless Chromium typing fresh
problems, and the page itself timing from the click until the answer, then the attention figure, is on it.

    python3 bench/demo.py --model runs/anylength/model
    python3 bench/demo.py --model model --digits 2 --name demo-default
    python3 bench/demo.py --model runs/anylength/model --screenshot docs/demo.png   (the page after the last problem)
"""
import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

from common import ROOT, model_config, save

# Runs in the page: click Add, then report (ms after the click) when the answer box holds this problem's sum and
# when a new figure has loaded. Timed by the browser's clock, so WebDriver's round trips do not count.
TIMER = """
const [prefix, done] = [arguments[0], arguments[arguments.length - 1]];
const box = document.querySelector('#answer textarea');
const old = document.querySelector('#attention img')?.src;
const t0 = performance.now();
let answered = null;
document.querySelector('#add').click();
(function poll() {
  const now = performance.now() - t0;
  if (answered === null && box.value.startsWith(prefix)) answered = now;
  const img = document.querySelector('#attention img');
  if (answered !== null && img && img.src !== old && img.complete && img.naturalWidth > 0)
    return done({answer_ms: answered, figure_ms: now, answer: box.value});
  if (now > 60000) return done({answer_ms: answered, figure_ms: null, answer: box.value});
  setTimeout(poll, 2);
})();
"""


def start(model: str) -> tuple[subprocess.Popen, str, float]:
    """app.py serving `model` on a free port: (process, url, seconds until the page was served)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--model", model, "--host", "127.0.0.1",
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")})
    url = f"http://127.0.0.1:{port}/"
    while True:
        if proc.poll() is not None:
            sys.exit(f"app.py exited {proc.returncode}: {proc.stderr.read().decode()[-500:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return proc, url, time.perf_counter() - t0
        except OSError:
            time.sleep(0.2)


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    browser, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not browser or not driver:
        sys.exit("no chromium and chromedriver on PATH: `make browser` installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100",
                "--hide-scrollbars"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "model"), help="model folder or Hub repo id app.py serves")
    p.add_argument("--problems", type=int, default=20, help="problems typed one after another (default 20)")
    p.add_argument("--digits", type=int, default=4, help="decimal digits of each operand (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="demo")
    p.add_argument("--screenshot", metavar="PNG", help="also save the whole page, as the last problem left it")
    args = p.parse_args()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    rng = random.Random(args.seed)
    lo, hi = 10 ** (args.digits - 1), 10 ** args.digits - 1
    problems = [(rng.randint(lo, hi), rng.randint(lo, hi)) for _ in range(args.problems)]
    load = os.getloadavg()
    proc, url, startup = start(args.model)
    browser = chromium()
    rows = []
    try:
        browser.set_script_timeout(90)
        t0 = time.perf_counter()
        browser.get(url)
        box = WebDriverWait(browser, 60).until(lambda b: b.find_element(By.CSS_SELECTOR, "#problem input"))
        page_s = time.perf_counter() - t0
        for a, b in problems:
            box.clear()
            box.send_keys(f"{a}+{b}")
            r = browser.execute_async_script(TIMER, f"{a}+{b}=")
            rows.append({"problem": f"{a}+{b}", "answer": r["answer"], "right": r["answer"] == f"{a}+{b}={a + b}",
                         "answer_s": round(r["answer_ms"] / 1000, 3) if r["answer_ms"] is not None else None,
                         "figure_s": round(r["figure_ms"] / 1000, 3) if r["figure_ms"] is not None else None})
            print(f"{a}+{b}: answer {rows[-1]['answer_s']} s, figure {rows[-1]['figure_s']} s ({r['answer']})")
        how = browser.find_element(By.CSS_SELECTOR, "#how textarea").get_attribute("value")
        if args.screenshot:
            browser.set_window_size(1400, browser.execute_script("return document.body.scrollHeight") + 40)
            time.sleep(0.5)  # the page reflows to the new size
            browser.save_screenshot(args.screenshot)
            print(f"wrote {args.screenshot}")
    finally:
        browser.quit()
        proc.terminate()
        proc.wait(timeout=30)

    answers = [r["answer_s"] for r in rows if r["answer_s"] is not None]
    figures = [r["figure_s"] for r in rows if r["figure_s"] is not None]
    result = {
        "model": args.model, "digits": args.digits, "problems": len(rows), "seed": args.seed,
        "load_average_before": [round(x, 2) for x in load],
        "server_start_s": round(startup, 2), "page_ready_s": round(page_s, 2),
        "first_answer_s": rows[0]["answer_s"], "answer_s": {"median": statistics.median(answers), "max": max(answers)},
        "figure_s": {"median": statistics.median(figures), "max": max(figures)} if figures else None,
        "all_answered": len(answers) == len(rows), "right": sum(r["right"] for r in rows),
        "last_how": how, "target": "first answer on the page within 2 s of submitting a 4-digit problem",
        "rows": rows,
    }
    print(f"answer on the page after {result['answer_s']['median']} s median, {result['answer_s']['max']} s at most "
          f"(first {result['first_answer_s']} s); figure {result['figure_s']}; {result['right']}/{len(rows)} right")
    save(args.name, result, model_config(args.model))


if __name__ == "__main__":
    main()
