//! One event to deliver, serialised once, with who may see it.

use std::collections::HashSet;

use bytes::Bytes;

use crate::blocks::BlockIndex;
use crate::domain::{ConnectionId, UserId};

/// One event to deliver, serialised once.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The frame, serialised once.
    pub bytes: Bytes,
    /// Shed, rather than closing the socket, when the queue is full.
    pub ephemeral: bool,
    /// The user who caused it: recipients who block them do not get it.
    pub author: Option<UserId>,
    /// Not to this user's sockets (e.g. typing goes to the others).
    pub except_user: Option<UserId>,
    /// Not to this socket (e.g. `read` goes to my other devices).
    pub except_conn: Option<ConnectionId>,
    /// Also not to users the author blocked (presence: neither way).
    pub mutual: bool,
    /// The frame's `type`, for metrics.
    pub kind: &'static str,
}

impl Delivery {
    /// A durable-or-ephemeral event with no filters.
    pub fn plain(bytes: Bytes, ephemeral: bool) -> Self {
        Self {
            bytes,
            ephemeral,
            author: None,
            except_user: None,
            except_conn: None,
            mutual: false,
            kind: "other",
        }
    }

    /// A frame, serialized once, with no filters.
    pub fn frame(frame: &crate::protocol::ServerFrame) -> Self {
        Self {
            kind: frame.kind(),
            ..Self::plain(frame.to_bytes(), frame.is_ephemeral())
        }
    }

    /// Recipients to leave out because of blocks.
    pub(super) fn excluded(&self, blocks: &BlockIndex) -> Option<HashSet<UserId>> {
        let author = self.author?;
        if self.mutual {
            blocks.either_way(author)
        } else {
            blocks.blockers_of(author)
        }
    }
}
