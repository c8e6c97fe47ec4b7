//! The `group_subject` job: a group conversation is labelled with the group's subject,
//! asked of the gateway once after the conversation is created (webhooks carry only the
//! sender's push name, so without it a group showed as its first member).

use crate::{
    crypto::Aad,
    db::{
        self, conversations,
        jobs::{BackgroundJob, JobMeta, Outcome},
    },
    live,
    messaging::{
        GROUP_SUBJECT, Messaging,
        channel::{self, Outbound},
    },
};
use uuid::Uuid;

/// The `group_subject` job: asks the gateway for a group conversation's subject.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct GroupSubject {
    pub(crate) tenant_id: Uuid,
    #[serde(rename = "subject_id")]
    pub(crate) conversation_id: Uuid,
}

impl BackgroundJob for GroupSubject {
    const KIND: &'static str = GROUP_SUBJECT;
    type Context = Messaging;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("group_subject:{}", self.conversation_id))
    }

    async fn run(self, state: &Messaging, _: &JobMeta) -> anyhow::Result<Outcome> {
        run(state, self.tenant_id, self.conversation_id)
            .await
            .map(|()| Outcome::Done)
    }
}

async fn run(state: &Messaging, tenant_id: Uuid, conversation_id: Uuid) -> anyhow::Result<()> {
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let Some(conv) = conversations::get(&mut tx, conversation_id).await? else {
        return Ok(());
    };
    if !conv.is_group || conv.group_name_sealed.is_some() {
        return Ok(());
    }
    let Some(chat) = conversations::chat(&mut tx, conversation_id).await? else {
        return Ok(());
    };
    let channel = db::channels::get(&mut tx, conv.channel_id).await?;
    tx.commit().await?;
    let Some(channel) = channel else {
        return Ok(());
    };
    let jid = state
        .keys
        .open_tenant_str(
            tenant_id,
            Aad::new("conversations", "chat", conversation_id),
            &chat,
        )
        .await?;
    let subject = match channel::outbound(state, &channel).await? {
        Outbound::Evolution(c) => match c.group_subject(&jid).await {
            Ok(s) => s,
            // The group is gone or we left it: keep the member's name as the label.
            Err(crate::gateway::SendError::Rejected { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        Outbound::Meta(_) | Outbound::Simulator => None,
    };
    let Some(subject) = subject else {
        return Ok(());
    };
    let sealed = state
        .keys
        .seal_tenant_str(
            tenant_id,
            Aad::new("conversations", "group_name", conversation_id),
            &subject,
        )
        .await?;
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    conversations::set_group_name(&mut tx, conversation_id, &sealed).await?;
    tx.commit().await?;
    state.live.publish(tenant_id, &live::Event::Inbox).await;
    Ok(())
}

/// Opens a group's subject for display (`None` if unknown or unreadable).
pub(crate) async fn subject(
    state: &Messaging,
    tenant_id: uuid::Uuid,
    conversation_id: uuid::Uuid,
    sealed: Option<&[u8]>,
) -> Option<String> {
    state
        .keys
        .open_tenant_str(
            tenant_id,
            Aad::new("conversations", "group_name", conversation_id),
            sealed?,
        )
        .await
        .ok()
}
