//! The channel registry and its tree.

use jianlian_core::channel::{Channel, ChannelStatus, ChannelTree};
use jianlian_core::ids::AppId;

use crate::rows::{ChannelRow, channel_columns, ms, to_json};
use crate::{Store, StoreError};

impl Store {
    /// Registers a channel. Its parent must exist; its `app_id` must be new.
    pub async fn insert_channel(&self, channel: &Channel) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(parent) = &channel.parent {
            let tree = channel_tree_in(&mut tx).await?;
            tree.check_parent(&channel.app_id, parent)?;
        }
        let inserted = sqlx::query(
            "INSERT INTO channels (app_id, name, pid, parent_app_id, public_key, notify_hosts, \
             status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(channel.app_id.as_str().to_owned())
        .bind(channel.name.clone())
        .bind(channel.pid.as_str().to_owned())
        .bind(channel.parent.as_ref().map(|p| p.as_str().to_owned()))
        .bind(channel.public_key.clone())
        .bind(to_json(&channel.notify_hosts)?)
        .bind(channel.status.as_str())
        .bind(ms(channel.created_at))
        .execute(&mut *tx)
        .await;
        if let Err(e) = inserted {
            return Err(match StoreError::unique_violation(&e) {
                Some(_) => {
                    StoreError::Duplicate(format!("channel {} already exists", channel.app_id))
                }
                None => e.into(),
            });
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn channel(&self, app_id: &AppId) -> Result<Option<Channel>, StoreError> {
        let row: Option<ChannelRow> = sqlx::query_as(concat!(
            "SELECT ",
            channel_columns!(),
            " FROM channels WHERE app_id = $1"
        ))
        .bind(app_id.as_str().to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(Channel::try_from).transpose()
    }

    /// Every channel, by `app_id`.
    pub async fn channels(&self) -> Result<Vec<Channel>, StoreError> {
        let rows: Vec<ChannelRow> = sqlx::query_as(concat!(
            "SELECT ",
            channel_columns!(),
            " FROM channels ORDER BY app_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Channel::try_from).collect()
    }

    /// The channel tree, for the visibility rule.
    pub async fn channel_tree(&self) -> Result<ChannelTree, StoreError> {
        let mut conn = self.pool.acquire().await?;
        channel_tree_in(&mut conn).await
    }

    /// Replaces a channel's public key (`jianlian channel rotate-key`).
    pub async fn set_channel_public_key(
        &self,
        app_id: &AppId,
        public_key: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE channels SET public_key = $1 WHERE app_id = $2")
            .bind(public_key.to_owned())
            .bind(app_id.as_str().to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        not_found_if_zero(done.rows_affected(), app_id)
    }

    /// Suspends or reactivates a channel.
    pub async fn set_channel_status(
        &self,
        app_id: &AppId,
        status: ChannelStatus,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE channels SET status = $1 WHERE app_id = $2")
            .bind(status.as_str())
            .bind(app_id.as_str().to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        not_found_if_zero(done.rows_affected(), app_id)
    }

    /// Replaces a channel's allowed notify hosts.
    pub async fn set_channel_notify_hosts(
        &self,
        app_id: &AppId,
        hosts: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE channels SET notify_hosts = $1 WHERE app_id = $2")
            .bind(to_json(&hosts)?)
            .bind(app_id.as_str().to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        not_found_if_zero(done.rows_affected(), app_id)
    }
}

fn not_found_if_zero(rows: u64, app_id: &AppId) -> Result<(), StoreError> {
    if rows == 0 {
        return Err(StoreError::NotFound {
            what: "channel",
            key: app_id.to_string(),
        });
    }
    Ok(())
}

async fn channel_tree_in(conn: &mut sqlx::AnyConnection) -> Result<ChannelTree, StoreError> {
    let links: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT app_id, parent_app_id FROM channels")
            .fetch_all(&mut *conn)
            .await?;
    let links = links
        .into_iter()
        .map(|(child, parent)| {
            let child = crate::rows::app_id(&child)?;
            let parent = parent.as_deref().map(crate::rows::app_id).transpose()?;
            Ok((child, parent))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(ChannelTree::new(links)?)
}
