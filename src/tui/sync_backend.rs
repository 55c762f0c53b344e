//! A terminal backend wrapper that brackets every frame in a synchronized update (`CSI ? 2026 h` … `l`), so a
//! terminal that supports it (and tmux) shows whole frames only: no tearing over slow SSH links. Terminals that do
//! not know the sequence ignore it.

use std::io::Write;

use ratatui::backend::{Backend, ClearType, WindowSize};
use ratatui::buffer::Cell;
use ratatui::crossterm::{
    QueueableCommand,
    terminal::{BeginSynchronizedUpdate, EndSynchronizedUpdate},
};
use ratatui::layout::{Position, Size};

pub struct SyncUpdates<B> {
    inner: B,
    in_frame: bool,
}

impl<B> SyncUpdates<B> {
    pub fn new(inner: B) -> Self {
        SyncUpdates {
            inner,
            in_frame: false,
        }
    }
}

impl<B> Backend for SyncUpdates<B>
where
    B: Backend<Error = std::io::Error> + Write,
{
    type Error = std::io::Error;

    fn draw<'a, I>(&mut self, content: I) -> std::io::Result<()>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        // Terminal::draw calls draw once per frame, then the cursor calls, then flush.
        if !self.in_frame {
            self.inner.queue(BeginSynchronizedUpdate)?;
            self.in_frame = true;
        }
        self.inner.draw(content)
    }

    fn append_lines(&mut self, n: u16) -> std::io::Result<()> {
        self.inner.append_lines(n)
    }

    fn hide_cursor(&mut self) -> std::io::Result<()> {
        self.inner.hide_cursor()
    }

    fn show_cursor(&mut self) -> std::io::Result<()> {
        self.inner.show_cursor()
    }

    fn get_cursor_position(&mut self) -> std::io::Result<Position> {
        self.inner.get_cursor_position()
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> std::io::Result<()> {
        self.inner.set_cursor_position(position)
    }

    fn clear(&mut self) -> std::io::Result<()> {
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> std::io::Result<()> {
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> std::io::Result<Size> {
        self.inner.size()
    }

    fn window_size(&mut self) -> std::io::Result<WindowSize> {
        self.inner.window_size()
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.in_frame {
            self.inner.queue(EndSynchronizedUpdate)?;
            self.in_frame = false;
        }
        Backend::flush(&mut self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::CrosstermBackend;

    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn frames_are_bracketed() {
        let buf = Shared::default();
        // A fixed viewport: the Vec writer is no terminal to ask for a size.
        let mut term = Terminal::with_options(
            SyncUpdates::new(CrosstermBackend::new(buf.clone())),
            ratatui::TerminalOptions {
                viewport: ratatui::Viewport::Fixed(ratatui::layout::Rect::new(0, 0, 10, 2)),
            },
        )
        .unwrap();
        term.draw(|f| f.render_widget("hi", f.area())).unwrap();
        let out = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
        let begin = out.find("\x1b[?2026h").expect("begin");
        let end = out.rfind("\x1b[?2026l").expect("end");
        assert!(
            begin < out.find("hi").unwrap() && out.find("hi").unwrap() < end,
            "{out:?}"
        );
    }
}
