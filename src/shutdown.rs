//! A cloneable shutdown signal: Ctrl-C or SIGTERM ends serving and the worker gracefully.

use tokio::sync::watch;

#[derive(Clone)]
pub(crate) struct Shutdown {
    rx: watch::Receiver<bool>,
}

pub(crate) struct ShutdownTrigger(watch::Sender<bool>);

impl ShutdownTrigger {
    pub(crate) fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    pub(crate) fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), Shutdown { rx })
    }

    pub(crate) fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    pub(crate) async fn wait(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// A signal that fires on Ctrl-C or SIGTERM.
    pub(crate) fn from_os_signals() -> Shutdown {
        let (trigger, shutdown) = Shutdown::new();
        tokio::spawn(async move {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            let term = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let term = std::future::pending::<()>();
            tokio::select! {
                _ = ctrl_c => {}
                _ = term => {}
            }
            tracing::info!("shutdown requested");
            trigger.trigger();
        });
        shutdown
    }
}
