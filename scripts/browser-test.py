#!/usr/bin/env python3
"""The chat page at `/`, driven in real Chromium (Debian's chromium + chromium-driver, Selenium).

    browser-test.py --imctl .build/debug/imctl [--screenshot docs/chat-page.png]

Starts `imctl serve` on a free loopback port with a fresh SQLite file and checks, as two people in two
browsers would see it: signing in (and two-factor sign-in), a room both have open, messages both ways,
a message from `imctl send` appearing live, a body holding markup shown as text, a direct conversation
with its unread count, and a server restart during which the pages reconnect and resume with nothing
lost or doubled. Exits 0 when every check holds; 1 with the failing check and the browser's console.
"""

import argparse
import base64
import hashlib
import hmac
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 30  # seconds for any one thing to show up in a page

XSS = '<img src=x onerror="document.title=\'pwned\';window.pwned=1">'


class Failure(Exception):
    pass


def totp(secret_b32, at=None):
    """RFC 6238 code (SHA-1, 6 digits, 30 s) for an otpauth secret."""
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8), casefold=True)
    counter = int((at or time.time()) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


class Server:
    """`imctl serve` on a free port (then the same port again after a restart)."""

    def __init__(self, imctl, database):
        self.imctl, self.database, self.port, self.process = imctl, database, 0, None

    def start(self):
        self.process = subprocess.Popen(
            [self.imctl, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--database", self.database],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.process.stderr.readline()
            if not line:
                raise Failure(f"serve exited with {self.process.wait()} before it was ready")
            found = re.search(r"ws://127\.0\.0\.1:(\d+)", line)
            if found:
                self.port = int(found.group(1))
                # Keep draining stderr so that the server never blocks on a full pipe.
                drain = subprocess.Popen(["cat"], stdin=self.process.stderr, stdout=subprocess.DEVNULL)
                self.drain = drain
                return
        raise Failure("serve printed no ready line within 30 s")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)

    @property
    def http(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self):
        return f"ws://127.0.0.1:{self.port}"


class Page:
    """One person's browser."""

    def __init__(self, name, driver_path, chromium):
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1100,700", "--force-device-scale-factor=1", "--lang=en-US"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.name = name
        self.driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)

    def quit(self):
        self.driver.quit()

    def until(self, what, condition):
        try:
            return WebDriverWait(self.driver, WAIT, poll_frequency=0.1).until(lambda d: condition())
        except TimeoutException:
            raise Failure(f"{self.name}: {what} (not within {WAIT} s)") from None

    def el(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def els(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def block_socket(self, blocked):
        """Takes the page off the network (DevTools), or puts it back."""
        self.driver.execute_cdp_cmd("Network.enable", {})
        self.driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": blocked, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})

    def state(self):
        return self.el("#state").get_attribute("data-state")

    def sign_in(self, url, user, password, code=None):
        self.driver.get(url)
        self.until("the sign-in form shows", lambda: self.el("#login-form").is_displayed())
        self.el("#login-user").clear()
        self.el("#login-user").send_keys(user)
        self.el("#login-password").send_keys(password)
        self.el("#login-submit").click()
        if code is not None:
            self.until("the page asks for the two-factor code", lambda: self.el("#login-otp").is_displayed())
            self.el("#login-otp").send_keys(code())
            self.el("#login-submit").click()
        self.until(f"{user} is signed in and online", lambda: self.el("#chat").is_displayed() and self.state() == "online")
        me = self.el("#me").text
        if me != user:
            raise Failure(f"{self.name}: the page says it is {me!r}, not {user!r}")

    def open(self, name):
        self.el("#open-name").send_keys(name, Keys.ENTER)
        self.until(f"{name} is open", lambda: self.el("#title").text == name)

    def click_conversation(self, name):
        self.until(f"{name} is in the list", lambda: self.els(f'li[data-conv="{name}"]'))
        self.el(f'li[data-conv="{name}"]').click()
        self.until(f"{name} is open", lambda: self.el("#title").text == name)

    def say(self, text):
        self.el("#body").send_keys(text, Keys.ENTER)

    def messages(self):
        """(seq, from, body) of the delivered messages shown, in page order."""
        script = """return Array.from(document.querySelectorAll('#messages .msg:not(.pending):not(.failed)'))
                      .map(li => [Number(li.dataset.seq), li.querySelector('.from').textContent,
                                  li.querySelector('.body').textContent]);"""
        return [tuple(m) for m in self.driver.execute_script(script)]

    def shows(self, body, sender=None):
        return any(b == body and (sender is None or f == sender) for _, f, b in self.messages())

    def wait_for(self, body, sender=None):
        self.until(f"the message {body!r} appears", lambda: self.shows(body, sender))

    def console(self):
        try:
            return [entry["message"] for entry in self.driver.get_log("browser")]
        except Exception:  # noqa: BLE001 - best effort, for the failure report only
            return []


def imctl(binary, *args, stdin=None, env=None):
    done = subprocess.run([binary, *args], input=stdin, capture_output=True, text=True, timeout=60, env=env)
    if done.returncode != 0:
        raise Failure(f"imctl {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout.strip()


def check_in_order(page, room):
    """Every seq of the open room from 1 up, each once, in order."""
    seqs = [s for s, _, _ in page.messages()]
    if seqs != list(range(1, len(seqs) + 1)):
        raise Failure(f"{page.name}: {room} shows seqs {seqs}, not 1…{len(seqs)} once each in order")
    return len(seqs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--imctl", required=True, help="the built imctl binary")
    parser.add_argument("--screenshot", help="save a screenshot of the page here")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--chromedriver", default=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    args = parser.parse_args()
    binary = os.path.abspath(args.imctl)

    work = tempfile.mkdtemp(prefix="imctl-browser-")
    database = os.path.join(work, "imctl.db")
    env = dict(os.environ, IMCTL_DATABASE=database, XDG_CONFIG_HOME=work, HOME=work, NO_COLOR="1")
    env.pop("IMCTL_TOKEN", None)
    env.pop("IMCTL_SERVER", None)
    imctl(binary, "users", "add", "alice", "--password-stdin", stdin="alice-password\n", env=env)
    imctl(binary, "users", "add", "bob", "--password-stdin", stdin="bob-password\n", env=env)
    imctl(binary, "users", "add", "carol", "--password-stdin", stdin="carol-password\n", env=env)
    uri = imctl(binary, "users", "otp", "carol", "--enable", env=env)
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0]
    shell_token = imctl(binary, "users", "token", "carol", "--label", "browser-test", env=env)

    server = Server(binary, database)
    server.start()
    pages = []
    try:
        alice = Page("alice", args.chromedriver, args.chromium)
        pages.append(alice)
        bob = Page("bob", args.chromedriver, args.chromium)
        pages.append(bob)

        def send(to, body):
            imctl(binary, "send", "--server", server.ws, "--token", shell_token, to, body, env=env)

        print("sign in", flush=True)
        alice.sign_in(server.http + "/", "alice", "alice-password")
        bob.sign_in(server.http + "/", "bob", "bob-password")

        print("a room, both ways", flush=True)
        alice.open("general")
        bob.open("general")
        alice.say("hello bob")
        bob.wait_for("hello bob", "alice")
        bob.say("hi alice, a second line")
        alice.wait_for("hi alice, a second line", "bob")
        alice.wait_for("hello bob", "alice")

        print("a message from imctl send", flush=True)
        send("general", "from the shell")
        alice.wait_for("from the shell", "carol")
        bob.wait_for("from the shell", "carol")

        print("markup is text", flush=True)
        send("general", XSS)
        for page in (alice, bob):
            page.wait_for(XSS, "carol")
            if page.els("#messages img"):
                raise Failure(f"{page.name}: the body became an <img> element")
            if page.driver.execute_script("return window.pwned === 1 || document.title === 'pwned'"):
                raise Failure(f"{page.name}: the body's onerror script ran")

        print("a direct conversation", flush=True)
        alice.open("@bob")
        alice.say("psst, just you")
        bob.until("@alice appears under Direct with one unread",
                  lambda: [e.text for e in bob.els('#directs li[data-conv="@alice"] .unread')] == ["1"])
        bob.click_conversation("@alice")
        bob.wait_for("psst, just you", "alice")
        bob.say("got it")
        alice.wait_for("got it", "bob")
        bob.click_conversation("general")
        alice.click_conversation("general")
        if alice.shows("got it") or bob.shows("psst, just you"):
            raise Failure("a direct message shows in the room")
        before = check_in_order(alice, "general")

        print("the server restarts; the pages resume", flush=True)
        # The pages cannot reconnect until the three messages are stored, so they must resume after
        # their last seq to show them (a live-only subscription would miss them).
        for page in (alice, bob):
            page.block_socket(True)
        server.stop()
        for page in (alice, bob):
            page.until("the page shows it is offline", lambda p=page: p.state() == "offline")
        server.start()
        for i in range(1, 4):
            send("general", f"while you were away {i}")
        time.sleep(1)
        for page in (alice, bob):
            if page.state() == "online" or page.shows("while you were away 1"):
                raise Failure(f"{page.name}: the page reconnected while its socket was blocked")
            page.block_socket(False)
        for page in (alice, bob):
            page.until("the page is online again", lambda p=page: p.state() == "online")
            for i in range(1, 4):
                page.wait_for(f"while you were away {i}", "carol")
        alice.say("back again")
        bob.wait_for("back again", "alice")
        for page in (alice, bob):
            page.until("every message shows once, in order",
                       lambda p=page: [s for s, _, _ in p.messages()] == list(range(1, before + 5)))
            check_in_order(page, "general")
        history = imctl(binary, "listen", "--server", server.ws, "--token", shell_token, "general",
                        "--since", "0", "--count", str(before + 4), "--timeout", "10s", "--json", env=env)
        if len(history.splitlines()) != before + 4:
            raise Failure(f"the store holds {len(history.splitlines())} messages in general, the pages {before + 4}")

        print("a reload keeps the session and shows the history", flush=True)
        bob.driver.refresh()
        bob.until("bob is back online after a reload", lambda: bob.el("#chat").is_displayed() and bob.state() == "online")
        bob.until("general is open again with its history", lambda: bob.el("#title").text == "general" and bob.shows("back again"))
        check_in_order(bob, "general")

        if args.screenshot:
            bob.driver.execute_script("document.querySelector('#messages').scrollTop = 1e9")
            bob.driver.save_screenshot(args.screenshot)
            print(f"screenshot: {args.screenshot}", flush=True)

        print("two-factor sign-in, then sign out", flush=True)
        alice.el("#logout").click()
        alice.until("signing out shows the sign-in form", lambda: alice.el("#login-form").is_displayed())
        alice.sign_in(server.http + "/", "carol", "carol-password", code=lambda: totp(secret))
        alice.open("general")
        alice.wait_for("from the shell", "carol")

        print("ok: the chat page works in Chromium", flush=True)
        return 0
    except Failure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        for page in pages:
            for line in page.console():
                print(f"  {page.name} console: {line}", file=sys.stderr)
        return 1
    finally:
        for page in pages:
            page.quit()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
