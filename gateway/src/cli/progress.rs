//! indicatif progress bars for long CLI work (hidden when not a terminal).

use indicatif::{ProgressBar, ProgressStyle};
use vault::rekey::Progress;

pub struct Bar {
    bar: std::sync::Mutex<Option<ProgressBar>>,
}

impl Bar {
    pub fn new() -> Self {
        Bar { bar: std::sync::Mutex::new(None) }
    }
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Bar {
    fn start(&self, label: &str, total: u64) {
        let pb = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} ({eta})") {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_message(label.to_string());
        if let Ok(mut g) = self.bar.lock() {
            *g = Some(pb);
        }
    }
    fn inc(&self, n: u64) {
        if let Ok(g) = self.bar.lock()
            && let Some(pb) = g.as_ref()
        {
            pb.inc(n);
        }
    }
    fn finish(&self) {
        if let Ok(mut g) = self.bar.lock()
            && let Some(pb) = g.take()
        {
            pb.finish();
        }
    }
}
