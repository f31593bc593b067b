//! How the screen looks: the message pane on top, the candidates of an
//! ambiguous Tab, the status bar, and the input line or the JSON editor
//! at the bottom.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use unicode_width::UnicodeWidthChar;

use crate::output;

use super::app::{App, LinkState};
use super::input::JsonEdit;
use super::pane::highlight;

/// Draws the whole screen.
pub(crate) fn draw(app: &mut App<'_>, frame: &mut Frame<'_>) {
    let area = frame.area();
    let bottom = match &app.json {
        Some(edit) => {
            let wanted = u16::try_from(edit.lines.len() + 2).unwrap_or(u16::MAX);
            wanted.clamp(3, (area.height / 2).max(3))
        }
        None => 1,
    };
    let shown = u16::from(!app.shown.is_empty());
    let [pane, candidates, bar, input] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(shown),
        Constraint::Length(1),
        Constraint::Length(bottom),
    ])
    .areas(area);
    app.page = usize::from(pane.height);
    let rows = app.pane.rows(pane.width, usize::from(pane.height));
    frame.render_widget(Paragraph::new(rows), pane);
    if shown > 0 {
        let text = app.shown.join("  ");
        frame.render_widget(Paragraph::new(text).dim(), candidates);
    }
    frame.render_widget(Paragraph::new(status_line(app)).reversed(), bar);
    match &app.json {
        Some(edit) => draw_editor(edit, frame, input),
        None => draw_line(app, frame, input),
    }
}

/// Address, peer, run state, the connection, reconnections, last error.
fn status_line(app: &App<'_>) -> Line<'static> {
    let bar = &app.bar;
    let mut spans = vec![Span::raw(format!(" {} ", output::visible(&bar.address))).bold()];
    if !bar.peer.is_empty() {
        // "QEMU 7.2.0": the package string is in the pane.
        let peer = bar.peer.split(" (").next().unwrap_or_default();
        spans.push(Span::raw(format!("| {} ", output::visible(peer))));
    }
    if !bar.runstate.is_empty() {
        let colour = match bar.runstate.as_str() {
            "running" => Color::Green,
            "paused" | "prelaunch" | "inmigrate" => Color::Yellow,
            _ => Color::Red,
        };
        let state = format!("| {} ", output::visible(&bar.runstate));
        spans.push(Span::styled(state, Style::new().fg(colour).bold()));
    }
    let link = match bar.link {
        LinkState::Connected => "connected".to_owned(),
        LinkState::Connecting { attempt, of } if bar.peer.is_empty() => {
            format!("connecting ({attempt}/{of})")
        }
        LinkState::Connecting { attempt, of } => format!("reconnecting ({attempt}/{of})"),
        LinkState::Lost => "disconnected".to_owned(),
        LinkState::GaveUp => "disconnected, gave up".to_owned(),
    };
    spans.push(Span::raw(format!(
        "| {link} | reconnects: {} ",
        bar.reconnects
    )));
    if bar.waiting > 0 {
        spans.push(Span::raw(format!("| waiting for {} ", bar.waiting)).bold());
    }
    if app.pane.is_back() {
        spans.push(Span::raw("| scrolled back, Ctrl-L follows ").bold());
    }
    if let Some(e) = &bar.last_error {
        let e = output::visible(e).replace(['\n', '\t'], " ");
        spans.push(Span::styled(
            format!("| last error: {e} "),
            Style::new().fg(Color::Red),
        ));
    }
    Line::from(spans)
}

/// The prompt and the line, scrolled sideways to keep the cursor in
/// sight.
fn draw_line(app: &App<'_>, frame: &mut Frame<'_>, area: Rect) {
    let prompt = match (app.args.agent, app.args.hmp, app.parser.in_transaction()) {
        (true, _, _) => "(QGA) ",
        (_, true, _) => "(HMP) ",
        (_, _, true) => "(QEMU) ... ",
        _ => "(QEMU) ",
    };
    // One character shown for each typed, so the cursor stays right.
    let chars: Vec<char> = app
        .line
        .text()
        .chars()
        .map(|c| if output::is_unsafe(c) { '?' } else { c })
        .collect();
    let room = usize::from(area.width).saturating_sub(prompt.len() + 1);
    let cursor = app.line.cursor();
    let mut start = 0;
    while width(&chars[start..cursor]) > room {
        start += 1;
    }
    let text: String = chars[start..].iter().collect();
    let line = Line::from(vec![Span::raw(prompt).bold(), Span::raw(text)]);
    frame.render_widget(Paragraph::new(line), area);
    let x = prompt.len() + width(&chars[start..cursor]);
    frame.set_cursor_position(Position::new(
        area.x + u16::try_from(x).unwrap_or(area.width),
        area.y,
    ));
}

/// The JSON editor in a frame, scrolled to keep the cursor's row in
/// sight.
fn draw_editor(edit: &JsonEdit, frame: &mut Frame<'_>, area: Rect) {
    let block = Block::bordered().title(" JSON request: Alt-Enter or Ctrl-S sends, Esc closes ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let height = usize::from(inner.height.max(1));
    let top = edit.row.saturating_sub(height - 1);
    let lines: Vec<Line<'static>> = edit
        .lines
        .iter()
        .skip(top)
        .take(height)
        .map(|l| {
            let text: String = l
                .iter()
                .map(|&c| if output::is_unsafe(c) { '?' } else { c })
                .collect();
            Line::from(highlight(&text))
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
    let x = width(&edit.lines[edit.row][..edit.col]).min(usize::from(inner.width));
    frame.set_cursor_position(Position::new(
        inner.x + u16::try_from(x).unwrap_or(0),
        inner.y + u16::try_from(edit.row - top).unwrap_or(0),
    ));
}

/// The columns `chars` take.
fn width(chars: &[char]) -> usize {
    chars.iter().map(|c| c.width().unwrap_or(0)).sum()
}
