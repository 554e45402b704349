//! A headless Chromium driven over WebDriver (chromedriver, Debian package chromium-driver).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::peers::Proc;

/// A blocking HTTP exchange with chromedriver (loopback, JSON).
pub fn wd_http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> serde_json::Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect chromedriver");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let b = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{b}",
        b.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    // Read the head, then exactly Content-Length bytes (chromedriver keeps connections).
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break raw.len();
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end.min(raw.len())]).to_ascii_lowercase();
    let len: Option<usize> = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok());
    let body = match len {
        Some(len) => {
            while raw.len() < head_end + len {
                let n = s.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                raw.extend_from_slice(&buf[..n]);
            }
            String::from_utf8_lossy(&raw[head_end..(head_end + len).min(raw.len())]).into_owned()
        }
        None => {
            let _ = s.read_to_end(&mut raw);
            String::from_utf8_lossy(&raw[head_end.min(raw.len())..]).into_owned()
        }
    };
    serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
}

pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver (killed by pid) with one headless Chromium session (deleted on drop; its
/// processes, found by their private profile directory, are killed by pid as well).
pub struct Browser {
    port: u16,
    session: String,
    profile: PathBuf,
    _driver: Proc,
}

impl Browser {
    pub fn start(dir: &Path) -> Browser {
        Browser::start_with(dir, &[])
    }

    /// A browser with more Chromium switches (fake media devices for the browser phone).
    pub fn start_with(dir: &Path, extra: &[String]) -> Browser {
        let port = super::peers::free_sip_port();
        let log = std::fs::File::create(dir.join("chromedriver.log")).expect("log");
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn chromedriver (Debian package chromium-driver)");
        let driver = Proc {
            child,
            name: "chromedriver",
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = dir.join("chromium-profile");
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
            "--lang=ja",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend(extra.iter().cloned());
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": args,
            }
        }}});
        let v = wd_http(port, "POST", "/session", Some(&caps));
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_owned();
        Browser {
            port,
            session,
            profile,
            _driver: driver,
        }
    }

    pub fn cmd(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let v = wd_http(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        );
        assert!(
            v["value"]["error"].is_null(),
            "WebDriver {method} {path}: {v}"
        );
        v["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(serde_json::json!({ "url": url })));
    }

    pub fn find(&self, css: &str) -> Option<String> {
        let v = wd_http(
            self.port,
            "POST",
            &format!("/session/{}/element", self.session),
            Some(&serde_json::json!({"using": "css selector", "value": css})),
        );
        v["value"][ELEMENT].as_str().map(str::to_owned)
    }

    /// The text of `css`, empty when there is no such element — also when the page moved on
    /// between finding it and reading it (a stale element while a form is being submitted).
    pub fn text(&self, css: &str) -> String {
        let Some(e) = self.find(css) else {
            return String::new();
        };
        let v = wd_http(
            self.port,
            "GET",
            &format!("/session/{}/element/{e}/text", self.session),
            None,
        );
        if v["value"]["error"] == "stale element reference" {
            return String::new();
        }
        assert!(
            v["value"]["error"].is_null(),
            "WebDriver text of {css}: {v}"
        );
        v["value"].as_str().unwrap_or("").to_owned()
    }

    pub fn value(&self, css: &str) -> String {
        let e = self.find(css).unwrap_or_else(|| panic!("no {css}"));
        self.cmd("GET", &format!("/element/{e}/property/value"), None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The id of the focused element.
    pub fn active_id(&self) -> String {
        let v = self.cmd("GET", "/element/active", None);
        let e = v[ELEMENT].as_str().unwrap_or("").to_owned();
        self.cmd("GET", &format!("/element/{e}/property/id"), None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Types text into the focused element (keyboard input, the element is not chosen).
    pub fn type_text(&self, text: &str) {
        let v = self.cmd("GET", "/element/active", None);
        let e = v[ELEMENT].as_str().unwrap_or("").to_owned();
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(serde_json::json!({ "text": text })),
        );
    }

    /// Presses keys (WebDriver key codes) in order; `mods` are held throughout.
    pub fn keys(&self, mods: &[&str], keys: &[&str]) {
        let mut actions = Vec::new();
        for m in mods {
            actions.push(serde_json::json!({"type": "keyDown", "value": m}));
        }
        for k in keys {
            actions.push(serde_json::json!({"type": "keyDown", "value": k}));
            actions.push(serde_json::json!({"type": "keyUp", "value": k}));
        }
        for m in mods.iter().rev() {
            actions.push(serde_json::json!({"type": "keyUp", "value": m}));
        }
        self.cmd(
            "POST",
            "/actions",
            Some(serde_json::json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        );
        self.cmd("DELETE", "/actions", None);
    }

    /// Clicks the element `css` (which must exist).
    pub fn click(&self, css: &str) {
        let e = self.find(css).unwrap_or_else(|| panic!("no {css}"));
        self.cmd(
            "POST",
            &format!("/element/{e}/click"),
            Some(serde_json::json!({})),
        );
    }

    /// Replaces the text of an input or textarea.
    pub fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).unwrap_or_else(|| panic!("no {css}"));
        self.cmd(
            "POST",
            &format!("/element/{e}/clear"),
            Some(serde_json::json!({})),
        );
        if !text.is_empty() {
            self.cmd(
                "POST",
                &format!("/element/{e}/value"),
                Some(serde_json::json!({ "text": text })),
            );
        }
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// A cookie's value in the browser (to fetch as the logged-in user outside it).
    pub fn cookie(&self, name: &str) -> Option<String> {
        let v = wd_http(
            self.port,
            "GET",
            &format!("/session/{}/cookie/{name}", self.session),
            None,
        );
        v["value"]["value"].as_str().map(str::to_owned)
    }

    /// Runs an asynchronous script: it gets a callback as its last argument and the value
    /// passed to it is returned.
    pub fn execute_async(&self, script: &str) -> serde_json::Value {
        self.cmd(
            "POST",
            "/execute/async",
            Some(serde_json::json!({ "script": script, "args": [] })),
        )
    }

    pub fn screenshot(&self, to: &Path) {
        use base64::Engine;
        let v = self.cmd("GET", "/screenshot", None);
        if let Some(b) = v.as_str() {
            if let Ok(png) = base64::engine::general_purpose::STANDARD.decode(b) {
                let _ = std::fs::write(to, png);
            }
        }
    }

    /// Waits until `css`'s text satisfies `pred` (bounded).
    pub fn wait_text(&self, css: &str, within: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let t = self.text(css);
            if pred(&t) {
                return t;
            }
            if Instant::now() >= deadline {
                let url = self.cmd("GET", "/url", None);
                let src = self.cmd("GET", "/source", None);
                panic!("{css} never matched; last text {t:?}\nurl {url}\n{src}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Browser {
    /// Pids of the Chromium processes of this browser (found by their private profile).
    pub fn pids(&self) -> Vec<u32> {
        let marker = format!("--user-data-dir={}", self.profile.display());
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
            .filter(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                String::from_utf8_lossy(&cmdline).contains(&marker)
            })
            .collect()
    }

    /// Closes the current tab (after opening another, so that the browser lives on) and
    /// switches to the new one.
    pub fn close_tab(&self) {
        let new = self.cmd(
            "POST",
            "/window/new",
            Some(serde_json::json!({ "type": "tab" })),
        );
        let handle = new["handle"].as_str().expect("new tab").to_owned();
        self.cmd("DELETE", "/window", None);
        self.cmd(
            "POST",
            "/window",
            Some(serde_json::json!({ "handle": handle })),
        );
    }

    /// Sends `signal` (`-STOP`, `-CONT`, `-9`) to each of this browser's processes by pid.
    pub fn signal(&self, signal: &str) {
        for pid in self.pids() {
            let _ = Command::new("kill")
                .args([signal, &pid.to_string()])
                .status();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A browser stopped by the test must run again to end its session.
        self.signal("-CONT");
        let _ = wd_http(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        // Any Chromium process still running with our profile: kill it by pid.
        self.signal("-9");
    }
}
