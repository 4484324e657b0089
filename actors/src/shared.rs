//! What every actor of the core holds: the store, the group commit, the
//! broker, the block view and the tunables. Nothing here knows of any
//! actor, so every actor module may import it without a loop.

use std::sync::Arc;

use crate::blocks::BlockIndex;
use crate::broker::Broker;
use crate::config::RealtimeConfig;
use crate::group_commit::GroupCommit;
use crate::store::Store;

/// The services every actor shares (one per core, behind an `Arc`).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    /// Stores the rooms' messages, many rooms per transaction.
    pub(crate) group_commit: GroupCommit,
    /// Every event and every socket subscription goes through it.
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) blocks: Arc<BlockIndex>,
    pub(crate) config: RealtimeConfig,
}
