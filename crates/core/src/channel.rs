//! Channels (R1.2): the ISVs that bring merchants and trades to the acquirer,
//! possibly under other channels, and the visibility rule between them.
//!
//! **Rule:** a channel sees the merchants and trades of itself and of its
//! sub-channels (at any depth), never those of its parent or siblings.
//! [`ChannelTree::sees`] is the one place that decides it.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{AppId, Pid};

/// Whether a channel may call the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelStatus {
    Active,
    /// Refused at the door; its data stays.
    Suspended,
}

impl ChannelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelStatus::Active => "active",
            ChannelStatus::Suspended => "suspended",
        }
    }

    pub fn parse(text: &str) -> Option<ChannelStatus> {
        [ChannelStatus::Active, ChannelStatus::Suspended]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A channel as the gateway registers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    /// Issued by the gateway; the `app_id` the channel's SDK sends.
    pub app_id: AppId,
    pub name: String,
    /// The channel's own Alipay PID: the default `source` of its merchants (R2.3).
    pub pid: Pid,
    /// The channel above this one, if any.
    pub parent: Option<AppId>,
    /// The channel's RSA public key as given (PEM or bare base64); the gateway
    /// parses it with `jianlian_alipay::PublicKey` when it loads the channel.
    pub public_key: String,
    /// Hosts the channel may name in `notify_url` (see [`crate::notify::check_notify_url`]).
    pub notify_hosts: Vec<String>,
    pub status: ChannelStatus,
    pub created_at: Timestamp,
}

/// Why a channel tree or a new parent was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("channel {0} is listed twice")]
    Duplicate(AppId),
    #[error("parent channel {parent} of {child} does not exist")]
    UnknownParent { child: AppId, parent: AppId },
    #[error("channel {0} would be its own ancestor")]
    Cycle(AppId),
}

/// The parent links of every channel, checked to be a forest.
#[derive(Debug, Clone, Default)]
pub struct ChannelTree {
    parent_of: HashMap<AppId, Option<AppId>>,
}

impl ChannelTree {
    /// Builds the tree from `(channel, parent)` pairs, refusing duplicates,
    /// unknown parents and cycles.
    pub fn new<I>(links: I) -> Result<ChannelTree, ChannelError>
    where
        I: IntoIterator<Item = (AppId, Option<AppId>)>,
    {
        let mut parent_of = HashMap::new();
        for (child, parent) in links {
            if parent_of.contains_key(&child) {
                return Err(ChannelError::Duplicate(child));
            }
            parent_of.insert(child, parent);
        }
        let tree = ChannelTree { parent_of };
        for (child, parent) in &tree.parent_of {
            if let Some(parent) = parent
                && !tree.parent_of.contains_key(parent)
            {
                return Err(ChannelError::UnknownParent {
                    child: child.clone(),
                    parent: parent.clone(),
                });
            }
            if tree.ancestors(child).is_none() {
                return Err(ChannelError::Cycle(child.clone()));
            }
        }
        Ok(tree)
    }

    /// Whether the channel exists.
    pub fn contains(&self, app_id: &AppId) -> bool {
        self.parent_of.contains_key(app_id)
    }

    /// The chain above `app_id`, nearest first; `None` on a cycle. Bounded by
    /// the number of channels, so a corrupt table cannot loop forever.
    fn ancestors(&self, app_id: &AppId) -> Option<Vec<AppId>> {
        let mut chain = Vec::new();
        let mut at = self.parent_of.get(app_id)?.clone();
        while let Some(parent) = at {
            if parent == *app_id || chain.len() > self.parent_of.len() {
                return None;
            }
            at = self.parent_of.get(&parent).cloned().flatten();
            chain.push(parent);
        }
        Some(chain)
    }

    /// **The visibility rule**: `viewer` sees what `owner` owns when `owner` is
    /// `viewer` itself or one of its sub-channels. Unknown channels see nothing.
    pub fn sees(&self, viewer: &AppId, owner: &AppId) -> bool {
        if !self.contains(viewer) || !self.contains(owner) {
            return false;
        }
        viewer == owner
            || self
                .ancestors(owner)
                .is_some_and(|chain| chain.contains(viewer))
    }

    /// `viewer` and every channel below it, sorted.
    pub fn visible_from(&self, viewer: &AppId) -> Vec<AppId> {
        let mut seen: Vec<AppId> = self
            .parent_of
            .keys()
            .filter(|owner| self.sees(viewer, owner))
            .cloned()
            .collect();
        seen.sort();
        seen
    }

    /// Checks that `parent` can become the parent of `child` (a new channel, or
    /// a move): the parent exists and the move creates no cycle.
    pub fn check_parent(&self, child: &AppId, parent: &AppId) -> Result<(), ChannelError> {
        if !self.contains(parent) {
            return Err(ChannelError::UnknownParent {
                child: child.clone(),
                parent: parent.clone(),
            });
        }
        if parent == child || self.sees(child, parent) {
            return Err(ChannelError::Cycle(child.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> AppId {
        AppId::parse(s).unwrap()
    }

    fn tree() -> ChannelTree {
        // bank ─┬─ a ── a1 ── a11
        //       └─ b
        ChannelTree::new([
            (id("bank"), None),
            (id("a"), Some(id("bank"))),
            (id("a1"), Some(id("a"))),
            (id("a11"), Some(id("a1"))),
            (id("b"), Some(id("bank"))),
            (id("solo"), None),
        ])
        .unwrap()
    }

    #[test]
    fn a_channel_sees_itself_and_below_only() {
        let t = tree();
        assert!(t.sees(&id("a"), &id("a")));
        assert!(t.sees(&id("a"), &id("a11")));
        assert!(t.sees(&id("bank"), &id("b")));
        assert!(!t.sees(&id("a1"), &id("a")), "not the parent");
        assert!(!t.sees(&id("a"), &id("b")), "not a sibling");
        assert!(!t.sees(&id("solo"), &id("a")));
        assert!(!t.sees(&id("ghost"), &id("ghost")), "unknown sees nothing");
        assert_eq!(t.visible_from(&id("a")), vec![id("a"), id("a1"), id("a11")]);
    }

    #[test]
    fn cycles_and_unknown_parents_are_refused() {
        let cyclic = ChannelTree::new([(id("x"), Some(id("y"))), (id("y"), Some(id("x")))]);
        assert!(matches!(cyclic, Err(ChannelError::Cycle(_))));
        let orphan = ChannelTree::new([(id("x"), Some(id("nope")))]);
        assert!(matches!(orphan, Err(ChannelError::UnknownParent { .. })));
        let t = tree();
        assert!(t.check_parent(&id("a"), &id("a11")).is_err(), "would loop");
        assert!(t.check_parent(&id("new"), &id("a11")).is_ok());
        assert!(t.check_parent(&id("new"), &id("nope")).is_err());
    }
}
