//! Buyer authorisation (apis.md §8): the authorize page redirect, token
//! exchange with single-use codes and refresh tokens, user info, and OpenID
//! apps paying with `buyer_open_id`.

use jianlian_alipay::api::oauth::{OauthToken, UserInfoShare};
use jianlian_alipay::api::trade::TradeCreate;
use jianlian_alipay::request::CallOptions;
use jianlian_sandbox::model::IdMode;
use jianlian_sandbox::{AppSpec, BuyerSpec};

use crate::common::*;

#[tokio::test]
async fn authorize_page_then_token_then_user_info() {
    let t = TestApp::new().await;
    let buyer = t
        .buyer(BuyerSpec {
            name: Some("李四".into()),
            ..Default::default()
        })
        .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = format!(
        "{}/oauth2/publicAppAuthorize.htm?app_id={}&scope=auth_user&redirect_uri=https%3A%2F%2Fbank.example%2Fh5&state=s1",
        t.sandbox.base_url(),
        t.app.app_id
    );
    let form = http.get(&page).send().await.unwrap();
    assert_eq!(form.status(), 200);
    assert!(form.text().await.unwrap().contains("buyer_id"));
    let redirect = http
        .get(format!("{page}&buyer_id={buyer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 303);
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("https://bank.example/h5?app_id="),
        "{location}"
    );
    assert!(location.contains("&state=s1") && location.contains("source=alipay_wallet"));
    let code = location
        .split("auth_code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let token = t
        .call(&OauthToken::AuthorizationCode(code.clone()))
        .await
        .success()
        .unwrap();
    assert_eq!(token.user_id.as_deref(), Some(buyer.as_str()));
    // Codes are single use.
    assert_eq!(
        sub_code(&t.call(&OauthToken::AuthorizationCode(code)).await),
        "isv.code-invalid"
    );
    let options = CallOptions {
        auth_token: token.access_token.clone(),
        ..Default::default()
    };
    let info = t
        .client
        .execute(&UserInfoShare, &options)
        .await
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(info.nick_name.as_deref(), Some("李四"));
    // Refresh tokens are single use too.
    let refresh = token.refresh_token.unwrap();
    let again = t
        .call(&OauthToken::RefreshToken(refresh.clone()))
        .await
        .success()
        .unwrap();
    assert_ne!(again.access_token, token.access_token);
    assert_eq!(
        sub_code(&t.call(&OauthToken::RefreshToken(refresh)).await),
        "isv.refreshed-token-invalid"
    );
}

#[tokio::test]
async fn open_id_apps_pay_with_buyer_open_id() {
    let t = TestApp::with_spec(AppSpec {
        id_mode: Some(IdMode::OpenId),
        ..Default::default()
    })
    .await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    let code = t
        .sandbox
        .authorize(&t.app.app_id, &buyer, "auth_base")
        .await
        .unwrap();
    let token = t
        .call(&OauthToken::AuthorizationCode(code))
        .await
        .success()
        .unwrap();
    assert_eq!(token.user_id, None);
    let open_id = token.open_id.unwrap();
    assert!(open_id.starts_with('0'));
    let create = TradeCreate {
        buyer_open_id: Some(open_id.clone()),
        order: t.order("O1", "3.00"),
        ..Default::default()
    };
    let trade_no = t.call(&create).await.success().unwrap().trade_no.unwrap();
    t.sandbox.confirm(&trade_no).await.unwrap();
    let q = t
        .call(&jianlian_alipay::api::trade::TradeQuery {
            trade: jianlian_alipay::api::trade::TradeRef::out_trade_no("O1"),
            ..Default::default()
        })
        .await
        .success()
        .unwrap();
    assert_eq!(q.buyer_open_id.as_deref(), Some(open_id.as_str()));
    assert_eq!(q.buyer_user_id, None);
    // auth_base does not allow user info.
    let options = CallOptions {
        auth_token: token.access_token,
        ..Default::default()
    };
    let out = t
        .client
        .execute(&jianlian_alipay::api::oauth::UserInfoShare, &options)
        .await
        .unwrap();
    assert_eq!(sub_code(&out), "isv.insufficient-user-permissions");
}
