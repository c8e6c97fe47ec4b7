//! A real browser for end-to-end journeys: Debian's Chromium, headless, driven over WebDriver
//! (chromedriver) with fantoccini. Browser tests are serialized; each gets its own
//! chromedriver and a temporary profile. A missing browser fails the test with the install
//! line; it never skips.

use std::{process::Stdio, time::Duration};

use fantoccini::{Client, ClientBuilder, Locator};
use tokio::{
    process::{Child, Command},
    sync::{Mutex, MutexGuard},
};

static SERIAL: Mutex<()> = Mutex::const_new(());

pub(super) struct Browser {
    pub(crate) client: Client,
    driver: Child,
    _profile: tempdir::TempDir,
    _serial: MutexGuard<'static, ()>,
}

mod tempdir {
    /// A directory removed on drop.
    pub(super) struct TempDir(pub std::path::PathBuf);
    impl TempDir {
        pub(super) fn new() -> TempDir {
            let p = std::env::temp_dir().join(format!("sigmaai-chrome-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn find(cmd: &str) -> Option<String> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(cmd))
            .find(|p| p.is_file())
            .map(|p| p.to_string_lossy().into_owned())
    })
}

impl Browser {
    /// Starts a browser. A missing browser fails the test with what to install: a browser
    /// test that quietly returns would count as a pass while testing nothing.
    pub(super) async fn start() -> Browser {
        Self::start_with(&[]).await
    }

    /// A browser whose pages prefer the dark colour scheme (`prefers-color-scheme: dark`).
    pub(super) async fn start_dark() -> Browser {
        Self::start_with(&[
            "--force-dark-mode",
            "--blink-settings=preferredColorScheme=0",
        ])
        .await
    }

    /// A browser with extra Chromium switches.
    pub(super) async fn start_with(extra: &[&str]) -> Browser {
        let (Some(driver_bin), Some(chromium)) = (find("chromedriver"), find("chromium")) else {
            panic!(
                "chromium and chromedriver are needed for browser tests: \
                 `sudo apt-get install chromium chromium-driver` (scripts/test installs them)"
            );
        };
        let serial = SERIAL.lock().await;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let profile = tempdir::TempDir::new();
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ]
        .iter()
        .chain(extra)
        .map(|a| a.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.0.display()));
        let caps = serde_json::json!({
            "goog:chromeOptions": { "binary": chromium, "args": args }
        });
        let caps = match caps {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        };
        let url = format!("http://127.0.0.1:{port}");
        let mut last_err = None;
        for _ in 0..100 {
            // chromedriver speaks plain HTTP on loopback: no TLS stack needed.
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        driver,
                        _profile: profile,
                        _serial: serial,
                    };
                }
                Err(e) => {
                    last_err = Some(e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!("chromedriver did not accept a session: {last_err:?}");
    }

    /// Types `keys` into the element that has the focus (a keyboard shortcut).
    pub(super) async fn press(&self, keys: &str) {
        self.client
            .active_element()
            .await
            .unwrap()
            .send_keys(keys)
            .await
            .unwrap();
    }

    pub(super) async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub(super) async fn text(&self, css: &str) -> String {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// The element matching `css`, waiting up to 10 s for it to appear.
    pub(super) async fn el(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Waits until the element's text contains `expected` (e.g. after a form submission
    /// navigates) and returns it; after 20 s fails the test with the text it saw.
    pub(super) async fn wait_text(&self, css: &str, expected: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(expected) {
                return text;
            }
            if std::time::Instant::now() > deadline {
                let page = match self.client.find(Locator::Css("body")).await {
                    Ok(b) => b.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                panic!("{css} never showed {expected:?}; it shows {text:?}. Page:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Logs `email` in (the harness's [`PASSWORD`](crate::tests::client::PASSWORD)) through the
    /// login form of `server`, and waits for the page it lands on.
    pub(super) async fn log_in(&self, server: &crate::tests::harness::Server, email: &str) {
        self.goto(&server.url("/login")).await;
        self.el("#email").await.send_keys(email).await.unwrap();
        self.el("#password")
            .await
            .send_keys(crate::tests::client::PASSWORD)
            .await
            .unwrap();
        self.el("form button[type=submit]")
            .await
            .click()
            .await
            .unwrap();
        self.wait_text("h1", "Overview").await;
    }

    /// Runs a script in the page and returns what it returns.
    pub(super) async fn js(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Polls a script until it returns `true` (10 s at most); returns whether it did.
    pub(super) async fn until(&self, script: &str) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if self.js(script).await == serde_json::json!(true) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG screenshot (for a human to look at) under target/screenshots/.
    pub(super) async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    pub(super) async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}
