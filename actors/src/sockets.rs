//! Who is connected where: the lookup registry fan-out delivers through.
//!
//! Each socket has an [`Outbox`]: two bounded queues behind one lock,
//! drained by the socket's one writer task — durable events (messages,
//! edits, reactions, membership, acks) and ephemeral ones (typing,
//! presence). A full ephemeral queue sheds the event; a full durable queue
//! closes the socket with 4009 (the client resumes from its last seq).
//! Nothing here awaits, so a slow socket never slows a room. The writer is
//! woken through one waker, and the heartbeat ping and the close request
//! travel in the same queue state, so a busy writer waits on nothing else.

mod delivery;
mod outbox;
mod registry;
#[cfg(test)]
mod tests;

pub use delivery::Delivery;
pub use outbox::{CloseReason, Next, Outbox, OutboxReader, Pushed, flushes_before_close};
pub use registry::{Sockets, UserSlot};
