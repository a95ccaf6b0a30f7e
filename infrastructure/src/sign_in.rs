//! The sign-in settings the provider clients give (`oauth_settings` in each
//! provider's module): the app's credentials and callback, with the
//! provider's endpoints and scopes. What a provider does otherwise (extra
//! authorization parameters, credentials as HTTP Basic) it sets over these.

use crate::oauth::{AppCredentials, ClientAuthentication, OAuthSettings};

/// The app's sign-in at a provider's `auth_url` and `token_url` for
/// `scopes`, with the client credentials in the token request's body and no
/// extra authorization parameters.
pub(crate) fn app_sign_in(app: AppCredentials, (auth_url, token_url): (&str, &str), scopes: &[&str]) -> OAuthSettings {
    OAuthSettings {
        client_id: app.client_id,
        client_secret: app.client_secret,
        auth_url: auth_url.to_owned(),
        token_url: token_url.to_owned(),
        redirect_url: app.redirect_url,
        scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
        extra_authorize_params: Vec::new(),
        client_authentication: ClientAuthentication::RequestBody,
    }
}
