//! The comparison rule: each server figure within an interval of the
//! harness's, and which send errors leave a message in doubt.

use super::figures::{HarnessFigures, ServerFigures};

fn within(what: &str, server: u64, low: u64, allowance: u64, out: &mut Vec<String>) {
    let high = low.saturating_add(allowance);
    if server < low {
        out.push(format!(
            "{what}: server {server} < harness {low} (the harness saw more than the server counted)"
        ));
    } else if server > high {
        out.push(format!(
            "{what}: server {server} > harness {low} + {allowance} explained by closes"
        ));
    }
}

/// The comparison rule. Every server figure must lie in an interval
/// `[harness, harness + allowance]`:
///
/// - stored: `[stored, stored + stored_in_doubt]`;
/// - `message.created` deliveries:
///   `[live, live + in_doubt + unread_bound]`;
/// - 4009 closes: `[slow_consumer_closes, slow_consumer_closes +
///   closes_unseen]`.
///
/// The lower bounds hold by construction (every frame the harness counts
/// as live was queued, and counted, by the server). Returns the reasons it
/// does not hold; empty means the two agree.
pub fn compare(server: &ServerFigures, h: &HarnessFigures) -> Vec<String> {
    let mut out = Vec::new();
    within(
        "messages stored",
        server.messages_stored,
        h.stored,
        h.stored_in_doubt,
        &mut out,
    );
    within(
        "message.created deliveries",
        server.message_created_deliveries,
        h.live,
        h.in_doubt.saturating_add(h.unread_bound),
        &mut out,
    );
    within(
        "4009 closes",
        server.slow_consumer_closes,
        h.slow_consumer_closes,
        h.closes_unseen,
        &mut out,
    );
    out
}

/// Whether an error answer to a send leaves the message possibly stored:
/// refusals the server makes before storing do not.
pub fn send_error_in_doubt(code: &str) -> bool {
    !matches!(
        code,
        "rate_limited"
            | "not_found"
            | "forbidden"
            | "not_member"
            | "conflict"
            | "validation_failed"
            | "unknown_type"
            | "invalid_frame"
            | "malformed_frame"
    )
}
