//! The contact directory (issue 23): who wrote in, found by name or number, with privacy
//! state and the way to the conversation — and nothing of another tenant's.

use crate::tests::wa::Gw;

/// (name cell, number cell, privacy cell, conversations link) of each listed contact.
async fn listed(gw: &Gw, query: &str) -> Vec<(String, String, String, Option<String>)> {
    let page =
        gw.w.owner
            .get(&format!("/t/clinic-a/contacts{query}"))
            .await;
    assert_eq!(page.status, 200);
    let doc = scraper::Html::parse_document(&page.body);
    let rows = scraper::Selector::parse("#contact-list tbody tr").unwrap();
    let cell = scraper::Selector::parse("th, td").unwrap();
    let link = scraper::Selector::parse("a").unwrap();
    doc.select(&rows)
        .map(|tr| {
            let cells: Vec<_> = tr.select(&cell).collect();
            let text = |i: usize| cells[i].text().collect::<String>().trim().to_owned();
            let href = cells[3]
                .select(&link)
                .next()
                .and_then(|a| a.value().attr("href").map(str::to_owned));
            (text(0), text(1), text(2), href)
        })
        .collect()
}

#[tokio::test]
async fn the_directory_lists_searches_and_links_each_contact_with_its_privacy_state() {
    let gw = Gw::evolution().await;
    gw.customer_sends("A1", "5511988887777", "Ana Souza", "oi")
        .await;
    gw.customer_sends("A2", "5511988887777", "Ana Souza", "tudo bem?")
        .await;
    gw.customer_sends("B1", "5511977776666", "Bia Lima", "bom dia")
        .await;
    gw.customer_sends("C1", "5511966665555", "Caio", "apaguem meus dados")
        .await;
    let db = &gw.w.t.owner;
    let contact = |ext: &'static str| async move {
        sqlx::query_scalar::<_, uuid::Uuid>(
            "SELECT contact_id FROM messages WHERE external_id = $1",
        )
        .bind(ext)
        .fetch_one(db)
        .await
        .unwrap()
    };
    let (bia, caio) = (contact("B1").await, contact("C1").await);
    let conv_of = |c: uuid::Uuid| async move {
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM conversations WHERE contact_id = $1")
            .bind(c)
            .fetch_one(db)
            .await
            .unwrap()
    };
    let bia_conv = conv_of(bia).await;
    // Bia asks for her data; Caio is erased.
    let r =
        gw.w.owner
            .submit(
                &format!("/t/clinic-a/conversations/{bia_conv}"),
                "/t/clinic-a/privacy/requests",
                &[
                    ("contact", &bia.to_string()),
                    ("kind", "access"),
                    ("legal_basis", "lgpd"),
                ],
            )
            .await;
    assert_eq!(r.status, 303);
    let caio_conv = conv_of(caio).await;
    let r =
        gw.w.owner
            .submit(
                &format!("/t/clinic-a/conversations/{caio_conv}"),
                &format!("/t/clinic-a/contacts/{caio}/erase"),
                &[],
            )
            .await;
    assert_eq!(r.status, 303);

    let all = listed(&gw, "").await;
    let find = |name: &str| {
        all.iter()
            .find(|r| r.0.contains(name))
            .unwrap_or_else(|| panic!("{name} not listed: {all:?}"))
            .clone()
    };
    let ana = find("Ana Souza");
    assert_eq!(ana.1, "+5511988887777");
    let bia_row = find("Bia Lima");
    assert!(bia_row.2.contains("1 open request"), "{bia_row:?}");
    assert_eq!(
        bia_row.3.as_deref(),
        Some(format!("/t/clinic-a/conversations/{bia_conv}").as_str())
    );
    if let Some(erased) = all.iter().find(|r| r.2.contains("Erased")) {
        assert!(
            !erased.0.contains("Caio") && erased.1.is_empty(),
            "an erased contact shows neither name nor number: {erased:?}"
        );
    }
    assert!(all.iter().all(|r| !r.0.contains("Caio")));
    // Search by a name word, and by the number as a person types it.
    let by_name = listed(&gw, "?q=souza").await;
    assert_eq!(by_name.len(), 1, "{by_name:?}");
    assert!(by_name[0].0.contains("Ana Souza"));
    let by_phone = listed(&gw, "?q=%2B55+11+97777-6666").await;
    assert_eq!(by_phone.len(), 1, "{by_phone:?}");
    assert!(by_phone[0].0.contains("Bia Lima"));
    // The link opens the conversation.
    let thread = gw.w.owner.get(bia_row.3.as_deref().unwrap()).await;
    assert!(thread.body.contains("bom dia"));
    // A viewer may look; another tenant sees none of it.
    let viewer = gw.w.add_member("vi@a.test", "viewer").await;
    assert!(
        viewer
            .get("/t/clinic-a/contacts")
            .await
            .body
            .contains("Ana Souza")
    );
    let b = gw.w.other_tenant().await;
    let other = b.get("/t/clinic-b/contacts").await;
    assert_eq!(other.status, 200);
    assert!(!other.body.contains("Ana Souza") && !other.body.contains("5511988887777"));
    assert_eq!(b.get("/t/clinic-a/contacts").await.status, 404);
}
