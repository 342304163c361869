//! Indirect merchant onboarding (R2, apis.md §4): create, query by smid or
//! external_id, modify, validation naming the field, external_id unique per
//! acquirer, no access to another acquirer's merchants.

use jianlian_alipay::api::merchant::{
    IndirectCreate, IndirectModify, IndirectQuery, MerchantProfile,
};
use jianlian_alipay::{Code, Outcome};

use crate::common::*;

fn failure_msg<T: std::fmt::Debug>(o: &Outcome<T>) -> String {
    match o {
        Outcome::Failed(f) => f.sub_msg.clone().unwrap_or_default(),
        other => panic!("expected a failure: {other:?}"),
    }
}

#[tokio::test]
async fn create_query_modify() {
    let t = TestApp::new().await;
    assert!(t.smid.starts_with("2088") && t.smid.len() == 16);
    let by_ext = t
        .call(&IndirectQuery {
            external_id: Some("M0001".into()),
            ..Default::default()
        })
        .await
        .success()
        .unwrap();
    assert_eq!(by_ext.sub_merchant_id.as_deref(), Some(t.smid.as_str()));
    assert_eq!(by_ext.profile.name.as_deref(), Some("上海某某餐饮有限公司"));
    assert_eq!(by_ext.indirect_level.as_deref(), Some("INDIRECT_LEVEL_M0"));
    // Same external_id, same data: the same smid; other data: refused.
    assert_eq!(t.onboard("M0001").await, t.smid);
    let mut changed = profile("M0001");
    changed.name = Some("另一家公司".into());
    let dup = t.call(&IndirectCreate { profile: changed }).await;
    assert_eq!(sub_code(&dup), "EXTERNAL_ID_DUPLICATE");
    // Modify: the fields given replace the stored ones (R2.3: fix the source).
    let modify = IndirectModify {
        sub_merchant_id: t.smid.clone(),
        profile: MerchantProfile {
            source: Some("2088000000000999".into()),
            ..Default::default()
        },
    };
    assert!(t.call(&modify).await.is_success());
    let q = t
        .call(&IndirectQuery {
            sub_merchant_id: Some(t.smid.clone()),
            ..Default::default()
        })
        .await
        .success()
        .unwrap();
    assert_eq!(q.profile.source.as_deref(), Some("2088000000000999"));
    assert_eq!(q.profile.alias_name.as_deref(), Some("某某餐厅"));
    // Another acquirer sees nothing.
    let other = t.other_acquirer().await;
    let q = other
        .execute(
            &IndirectQuery {
                sub_merchant_id: Some(t.smid.clone()),
                ..Default::default()
            },
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(sub_code(&q), "SUB_MERCHANT_NOT_EXIST");
}

#[tokio::test]
async fn every_field_is_validated_by_name() {
    let t = TestApp::new().await;
    type Edit = Box<dyn Fn(&mut MerchantProfile)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("external_id", Box::new(|p| p.external_id = None)),
        ("name", Box::new(|p| p.name = Some(" ".into()))),
        ("alias_name", Box::new(|p| p.alias_name = None)),
        (
            "service_phone",
            Box::new(|p| p.service_phone = Some("phone".into())),
        ),
        ("source", Box::new(|p| p.source = Some("12345".into()))),
        ("category_id", Box::new(|p| p.category_id = None)),
        (
            "mcc",
            Box::new(|p| p.org_pid = Some("2088000000000002".into())),
        ),
        ("contact_info", Box::new(|p| p.contact_info = Some(vec![]))),
        (
            "contact_info[0].mobile",
            Box::new(|p| p.contact_info.as_mut().unwrap()[0].mobile = Some("123".into())),
        ),
        (
            "contact_info[0].type",
            Box::new(|p| p.contact_info.as_mut().unwrap()[0].contact_type = Some("BOSS".into())),
        ),
        (
            "business_license_type",
            Box::new(|p| p.business_license_type = Some("X".into())),
        ),
        (
            "service_codes[0]",
            Box::new(|p| p.service_codes = Some(vec!["WAP".into()])),
        ),
    ];
    for (field, edit) in cases {
        let mut p = profile("V1");
        edit(&mut p);
        let out = t.call(&IndirectCreate { profile: p }).await;
        let Outcome::Failed(f) = &out else {
            panic!("{field}: {out:?}")
        };
        assert_eq!(f.code, Code::InvalidArguments, "{field}");
        assert!(
            failure_msg(&out).contains(field),
            "{field}: {}",
            failure_msg(&out)
        );
    }
    // APP/PC services are refused for indirect merchants (R1.4) but the merchant is created.
    let mut p = profile("V2");
    p.service_codes = Some(vec!["F2F".into(), "APP".into()]);
    let ok = t
        .call(&IndirectCreate { profile: p })
        .await
        .success()
        .unwrap();
    assert_eq!(ok.service_codes, Some(vec!["F2F".to_owned()]));
    assert!(ok.service_fail_reason.unwrap().contains("APP"));
}
