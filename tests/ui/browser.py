"""Headless Debian chromium driven by selenium, for the UI's browser tests."""

from __future__ import annotations

import json

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def start_chromium(width: int = 1400, height: int = 900) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--disable-background-timer-throttling"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def console_errors(driver: webdriver.Chrome) -> list[str]:
    """The SEVERE console entries since the last call (reading the log empties it)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def loaded_logs(driver: webdriver.Chrome) -> list[str]:
    """Every line the list holds, top to bottom (the model behind the rows in the DOM)."""
    return driver.execute_script("return window.logExplorer.list.rows.map((row) => row.log)")


def shown_texts(driver: webdriver.Chrome) -> list[str]:
    """The text of the rows in the DOM, top to bottom."""
    return driver.execute_script("""
        return [...document.querySelectorAll('#viewport .row')]
          .sort((a, b) => a.dataset.index - b.dataset.index)
          .map((row) => row.querySelector('.text').textContent)""")


def status(driver: webdriver.Chrome) -> str:
    return driver.find_element("id", "status").text


def view_state(driver: webdriver.Chrome) -> dict:
    return json.loads(driver.execute_script("return JSON.stringify(window.logExplorer.state)"))
