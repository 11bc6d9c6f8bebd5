//! What the simulated containers print: kept per container, with the previous run's lines
//! after a restart (`?previous=true`), and published for `?follow=true`.

use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast;

/// A container of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogKey {
    /// Namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
}

/// One line and when it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When.
    pub time: Timestamp,
    /// The text, without newline.
    pub text: String,
}

#[derive(Default)]
struct ContainerLog {
    current: Vec<LogLine>,
    previous: Option<Vec<LogLine>>,
}

/// Lines kept per container run; older ones are dropped.
const MAX_LINES: usize = 2_000;

/// The logs of every container.
pub struct LogBook {
    logs: Mutex<HashMap<LogKey, ContainerLog>>,
    lines: broadcast::Sender<(LogKey, LogLine)>,
}

impl Default for LogBook {
    fn default() -> Self {
        Self {
            logs: Mutex::default(),
            lines: broadcast::channel(4096).0,
        }
    }
}

impl LogBook {
    /// Appends a line to a container's current run.
    pub fn append(&self, key: &LogKey, text: impl Into<String>) {
        let line = LogLine {
            time: Timestamp::now(),
            text: text.into(),
        };
        let mut logs = self.logs.lock().expect("log lock");
        let log = logs.entry(key.clone()).or_default();
        log.current.push(line.clone());
        if log.current.len() > MAX_LINES {
            log.current.remove(0);
        }
        drop(logs);
        let _ = self.lines.send((key.clone(), line));
    }

    /// Starts a new run of a container: the current lines become the previous run's.
    pub fn restart(&self, key: &LogKey) {
        let mut logs = self.logs.lock().expect("log lock");
        let log = logs.entry(key.clone()).or_default();
        log.previous = Some(std::mem::take(&mut log.current));
    }

    /// Forgets every container of a pod (it was deleted).
    pub fn remove_pod(&self, namespace: &str, pod: &str) {
        self.logs
            .lock()
            .expect("log lock")
            .retain(|k, _| !(k.namespace == namespace && k.pod == pod));
    }

    /// The lines of a container's current or previous run; `None` when it never ran (or has
    /// no previous run).
    pub fn read(&self, key: &LogKey, previous: bool) -> Option<Vec<LogLine>> {
        let logs = self.logs.lock().expect("log lock");
        let log = logs.get(key)?;
        if previous {
            log.previous.clone()
        } else {
            Some(log.current.clone())
        }
    }

    /// Lines as they are written.
    pub fn subscribe(&self) -> broadcast::Receiver<(LogKey, LogLine)> {
        self.lines.subscribe()
    }
}
