//! The briefing before an outbound call: who the agent is calling, from the CRM.

use super::*;

/// Tells the agent who it is calling from the organization's CRMs: the
/// contact's name, company and owner, and whether a deal is open.
pub struct CrmBriefing {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub connections: CrmConnections,
    /// The contact cache the CRM's webhooks keep: edits newer than its search index.
    pub directory: Arc<dyn CrmDirectory>,
}

impl CrmBriefing {
    async fn briefing_of(
        &self,
        organization_id: Uuid,
        provider: CrmProvider,
        connector: &CrmConnector,
        phone: &PhoneNumber,
    ) -> Result<Option<BTreeMap<String, String>>, AppError> {
        let integration = load_integration(self.store.as_ref(), organization_id, provider)
            .await?
            .state;
        if !integration.syncs_at(self.clock.now()) {
            return Ok(None);
        }
        let Ok(token) = self
            .connections
            .tokens
            .access(connector, organization_id, provider, false)
            .await?
        else {
            return Ok(None);
        };
        let api = connector.api.as_ref();
        // The CRM's search may lag an edit by seconds; the cache has what its webhooks told us since.
        let cached = self
            .directory
            .cached_contact_by_phone(organization_id, provider, phone)
            .await?
            .map(|cached| api.contact_of(&cached.contact_id, &cached.properties));
        let searched = api.find_contact(&token, phone).await.ok().flatten();
        let contact = match (searched, cached) {
            (Some(searched), Some(cached)) if cached.id == searched.id => CrmContact {
                id: searched.id,
                name: cached.name.or(searched.name),
                email: cached.email.or(searched.email),
                company: cached.company.or(searched.company),
                owner: cached.owner.or(searched.owner),
            },
            (Some(searched), _) => searched,
            (None, Some(cached)) => cached,
            (None, None) => return Ok(None),
        };
        let open_deal = api.open_deal(&token, &contact.id).await.ok().flatten();
        let last_note = api.last_note(&token, &contact.id).await.ok().flatten();
        let mut variables = BTreeMap::new();
        variables.insert("crmContactId".to_owned(), contact.id);
        variables.insert("hasOpenDeal".to_owned(), open_deal.is_some().to_string());
        for (name, value) in [
            ("customerName", contact.name),
            ("company", contact.company),
            ("email", contact.email),
            ("owner", contact.owner),
            ("lastNote", last_note),
        ] {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                variables.insert(name.to_owned(), value);
            }
        }
        Ok(Some(variables))
    }
}

#[async_trait]
impl crate::calls::CustomerBriefing for CrmBriefing {
    async fn briefing(&self, organization_id: Uuid, customer_number: &str) -> BTreeMap<String, String> {
        let Ok(phone) = PhoneNumber::parse(customer_number) else {
            return BTreeMap::new();
        };
        for provider in CrmProvider::ALL {
            let Some(connector) = self.connections.providers.get(provider) else {
                continue;
            };
            match self.briefing_of(organization_id, provider, connector, &phone).await {
                Ok(Some(variables)) => return variables,
                Ok(None) => {}
                // A briefing is a courtesy: the call goes out without it.
                Err(error) => {
                    tracing::warn!(%provider, error = %crate::error::report(&error), "no CRM briefing for an outbound call")
                }
            }
        }
        BTreeMap::new()
    }
}
