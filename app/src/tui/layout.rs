//! Screen geometry that both `update` (mouse clicks) and `draw` need, so the state does not
//! depend on the views.

use super::state::View;

/// First screen row of the runs table body (tabs line, block border, header).
pub const TABLE_BODY_TOP: u16 = 3;

/// Between two tabs of the top line.
pub const TAB_SEPARATOR: &str = "│";

/// Which tab is at column `x` of the top line.
pub fn tab_at(x: u16) -> Option<View> {
    let mut start = 0u16;
    for view in View::ALL {
        let width = view.title().len() as u16 + 2;
        if x >= start && x < start + width {
            return Some(view);
        }
        start += width + TAB_SEPARATOR.chars().count() as u16;
    }
    None
}
