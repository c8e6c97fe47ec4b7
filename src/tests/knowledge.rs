//! Knowledge that answers (issue 18): customers' questions through the simulator, the
//! review queue and the inbox, and the knowledge page's synonyms and "test a question".

use crate::tests::{client::World, harness::errors_logged};

/// A customer writes through the simulator; the worker drafts.
async fn customer_says(w: &World, phone: &str, text: &str) {
    let r = w
        .owner
        .submit(
            "/t/clinic-a/simulator",
            "/t/clinic-a/simulator",
            &[("phone", phone), ("name", "Cliente"), ("text", text)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    crate::jobs::run_due(&w.t.state).await.unwrap();
}

/// (state, reason, entries used, urgent) of every draft, oldest first.
async fn drafts(w: &World) -> Vec<(String, Option<String>, i32, bool)> {
    sqlx::query_as(
        "SELECT state, escalation_reason, cardinality(knowledge_ids), urgent
         FROM drafts ORDER BY created_at, id",
    )
    .fetch_all(&w.t.owner)
    .await
    .unwrap()
}

fn draft(state: &str, reason: Option<&str>, entries: i32) -> (String, Option<String>, i32, bool) {
    (state.into(), reason.map(Into::into), entries, false)
}

async fn saturday_only(w: &World) {
    w.add_knowledge(
        "hours",
        "Saturday opening hours",
        "On Saturdays we open from 8:00 to 12:30",
    )
    .await;
}

#[tokio::test]
async fn one_entry_answers_the_first_question_a_new_tenant_tries() {
    let w = World::new().await;
    saturday_only(&w).await;
    customer_says(
        &w,
        "+55 11 90000-0001",
        "Hi! what time do you open on saturday?",
    )
    .await;
    assert_eq!(drafts(&w).await, vec![draft("pending", None, 1)]);
    let review = w.owner.get("/t/clinic-a/review").await;
    assert!(
        review
            .body
            .contains("On Saturdays we open from 8:00 to 12:30"),
        "{}",
        review.body
    );
    assert!(review.body.contains("Saturday opening hours"), "provenance");
}

#[tokio::test]
async fn a_near_miss_escalates_instead_of_answering_the_wrong_entry() {
    let w = World::new().await;
    saturday_only(&w).await;
    customer_says(&w, "+55 11 90000-0002", "are you open on holidays?").await;
    assert_eq!(
        drafts(&w).await,
        vec![draft("escalated", Some("no_matching_knowledge"), 0)]
    );
}

#[tokio::test]
async fn two_questions_in_one_message_get_both_entries_and_a_third_is_left_to_a_person() {
    let w = World::new().await;
    w.add_knowledge(
        "hours",
        "Horário de funcionamento",
        "Atendemos de segunda a sexta das 8h às 18h e aos sábados das 8h às 12h.",
    )
    .await;
    w.add_knowledge(
        "price",
        "Preço da limpeza",
        "A limpeza dental custa R$ 180, com avaliação incluída.",
    )
    .await;
    customer_says(
        &w,
        "+55 11 90000-0003",
        "oi boa tarde! vcs abrem sabado? e qto custa a limpeza?",
    )
    .await;
    assert_eq!(drafts(&w).await, vec![draft("pending", None, 2)]);
    let review = w.owner.get("/t/clinic-a/review").await;
    assert!(review.body.contains("aos sábados das 8h às 12h"));
    assert!(review.body.contains("A limpeza dental custa R$ 180"));

    // A question nobody wrote an entry about: the rest is drafted, the reviewer is told.
    customer_says(
        &w,
        "+55 11 90000-0004",
        "Quanto custa a limpeza? Vocês fazem implante de titânio?",
    )
    .await;
    assert_eq!(
        drafts(&w).await[1],
        draft("pending", Some("partly_answered"), 1)
    );
    let review = w.owner.get("/t/clinic-a/review").await;
    assert!(
        review
            .body
            .contains("Only part of the message is answered here"),
        "{}",
        review.body
    );
}

#[tokio::test]
async fn a_follow_up_is_read_with_the_question_before_it() {
    let w = World::new().await;
    w.add_knowledge(
        "service",
        "Vacinação de cães e gatos",
        "Aplicamos a V10 em cães e a V4 em gatos. Não precisa agendar.",
    )
    .await;
    w.add_knowledge(
        "price",
        "Castração",
        "Castração com agendamento prévio. Gata: R$ 450, gato: R$ 300.",
    )
    .await;
    customer_says(&w, "+55 11 90000-0005", "qto custa a castracao de gata?").await;
    let conv: uuid::Uuid = sqlx::query_scalar("SELECT id FROM conversations")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    // Staff answer; the customer follows up with only "and for a male cat?", which alone
    // would be the vaccination entry (its title names cats).
    let r = w
        .owner
        .submit(
            &format!("/t/clinic-a/conversations/{conv}"),
            &format!("/t/clinic-a/conversations/{conv}/reply"),
            &[("text", "A de gata custa R$ 450.")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    customer_says(&w, "+55 11 90000-0005", "e de gato?").await;
    let ids: Vec<Vec<uuid::Uuid>> =
        sqlx::query_scalar("SELECT knowledge_ids FROM drafts ORDER BY created_at, id")
            .fetch_all(&w.t.owner)
            .await
            .unwrap();
    let castracao: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM knowledge_entries WHERE title = 'Castração'")
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    assert_eq!(ids.last(), Some(&vec![castracao]), "{ids:?}");
    // Alone, the same words pick the other entry: the context is what decided.
    let alone = w
        .owner
        .get("/t/clinic-a/knowledge/test?q=e%20de%20gato%3F")
        .await;
    assert!(
        alone.body.contains("Vacinação de cães e gatos</span>"),
        "{}",
        alone.body
    );
}

#[tokio::test]
async fn an_emergency_is_urgent_first_in_the_queue_and_marked_in_the_inbox_with_no_answer() {
    let w = World::new().await;
    w.add_knowledge(
        "hours",
        "Horário de atendimento",
        "Atendemos de segunda a sábado das 8h às 19h; domingos só emergências.",
    )
    .await;
    customer_says(&w, "+55 11 90000-0006", "Qual é a capital da França?").await;
    customer_says(
        &w,
        "+55 11 90000-0007",
        "socorro meu cachorro foi atropelado, vcs atendem agora??",
    )
    .await;
    let all = drafts(&w).await;
    assert_eq!(
        all,
        vec![
            draft("escalated", Some("no_matching_knowledge"), 0),
            ("escalated".into(), Some("emergency".into()), 0, true),
        ]
    );
    let review = w.owner.get("/t/clinic-a/review").await;
    let doc = scraper::Html::parse_document(&review.body);
    let cards: Vec<bool> = doc
        .select(&scraper::Selector::parse("article[data-review-card]").unwrap())
        .map(|c| c.value().classes().any(|k| k == "urgent"))
        .collect();
    assert_eq!(cards, vec![true, false], "the emergency comes first");
    assert!(review.body.contains("an emergency: answer it first"));
    let inbox = w.owner.get("/t/clinic-a/conversations").await;
    let doc = scraper::Html::parse_document(&inbox.body);
    assert_eq!(
        doc.select(&scraper::Selector::parse("[data-urgent]").unwrap())
            .count(),
        1,
        "{}",
        inbox.body
    );
    // Medical questions and complaints escalate with their reason, not urgent.
    customer_says(
        &w,
        "+55 11 90000-0008",
        "meu gato ta vomitando desde ontem, o que pode ser?",
    )
    .await;
    assert_eq!(
        drafts(&w).await[2],
        draft("escalated", Some("medical_question"), 0)
    );
}

#[tokio::test]
async fn synonyms_and_the_test_box_on_the_knowledge_page() {
    let w = World::new().await;
    w.add_knowledge(
        "faq",
        "Convênios aceitos",
        "Aceitamos Unimed Odonto e Amil Dental. Traga a carteirinha.",
    )
    .await;
    // Before: "seguro odontológico" means nothing to the knowledge base.
    let page = w
        .owner
        .get("/t/clinic-a/knowledge/test?q=aceitam%20seguro%20odontologico%3F")
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Would go to a person:"), "{}", page.body);
    let r = w
        .owner
        .submit(
            "/t/clinic-a/knowledge",
            "/t/clinic-a/knowledge/synonyms",
            &[("synonyms", "convênio = seguro odontológico\nbanho = tosa")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = w.owner.get("/t/clinic-a/knowledge").await;
    assert!(page.body.contains("convênio = seguro odontológico"));
    let page = w
        .owner
        .get("/t/clinic-a/knowledge/test?q=aceitam%20seguro%20odontologico%3F")
        .await;
    let doc = scraper::Html::parse_document(&page.body);
    let answer: String = doc
        .select(&scraper::Selector::parse("[data-test-answer]").unwrap())
        .flat_map(|e| e.text())
        .collect();
    assert_eq!(answer, "Convênios aceitos", "{}", page.body);
    assert!(page.body.contains("100%"), "coverage shown");
    assert!(page.body.contains("seguro"), "matched words shown");
    // The worker uses the same list.
    customer_says(&w, "+55 11 90000-0009", "vcs aceitam seguro odontologico?").await;
    assert_eq!(drafts(&w).await, vec![draft("pending", None, 1)]);
    // Bad input: a clear 422, nothing logged at ERROR.
    let errors_before = errors_logged();
    let long = "a".repeat(1_001);
    let page = w
        .owner
        .get(&format!("/t/clinic-a/knowledge/test?q={long}"))
        .await;
    assert_eq!(page.status, 422);
    assert!(page.body.contains("at most 1,000 characters"));
    let huge = "x = y\n".repeat(2_000);
    let r = w
        .owner
        .submit(
            "/t/clinic-a/knowledge",
            "/t/clinic-a/knowledge/synonyms",
            &[("synonyms", &huge)],
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(errors_logged(), errors_before, "bad input logged at ERROR");
    // Reviewers can't use either.
    let reviewer = w.add_member("rev@a.test", "reviewer").await;
    assert_eq!(
        reviewer.get("/t/clinic-a/knowledge/test?q=oi").await.status,
        403
    );
}

#[tokio::test]
async fn an_faq_is_imported_reviewed_and_only_the_kept_entries_saved() {
    let w = World::new().await;
    let csv =
        "title,body,kind\n\"Horário\",\"Seg a sex, 8h às 18h\",hours\nPix,Aceitamos Pix sem taxa\n";
    let page = w
        .owner
        .submit(
            "/t/clinic-a/knowledge",
            "/t/clinic-a/knowledge/import",
            &[("format", "csv"), ("text", csv)],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Review the imported entries"));
    assert_eq!(page.input_value("imp-title-0").as_deref(), Some("Horário"));
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM knowledge_entries")
            .fetch_one(&w.t.owner)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 0, "nothing saved before review");
    // The admin keeps the first (edited) and drops the second.
    let csrf = page.csrf();
    let r = w
        .owner
        .post(
            "/t/clinic-a/knowledge/import/save",
            &[
                ("csrf", csrf.as_str()),
                ("keep_0", "1"),
                ("kind_0", "hours"),
                ("title_0", "Horário de funcionamento"),
                ("body_0", "Seg a sex, 8h às 18h"),
                ("kind_1", "faq"),
                ("title_1", "Pix"),
                ("body_1", "Aceitamos Pix sem taxa"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let titles: Vec<String> = sqlx::query_scalar("SELECT title FROM knowledge_entries")
        .fetch_all(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(titles, vec!["Horário de funcionamento"]);
    // Markdown, and bad input: an unknown format and nothing to read are 422s.
    let page = w
        .owner
        .submit(
            "/t/clinic-a/knowledge",
            "/t/clinic-a/knowledge/import",
            &[
                ("format", "markdown"),
                ("text", "## Estacionamento\nHá vagas ao lado."),
            ],
        )
        .await;
    assert_eq!(
        page.input_value("imp-title-0").as_deref(),
        Some("Estacionamento")
    );
    let errors_before = errors_logged();
    for (format, text) in [("pdf", "x"), ("text", "   ")] {
        let r = w
            .owner
            .submit(
                "/t/clinic-a/knowledge",
                "/t/clinic-a/knowledge/import",
                &[("format", format), ("text", text)],
            )
            .await;
        assert_eq!(r.status, 422, "{format}");
    }
    assert_eq!(errors_logged(), errors_before, "bad input logged at ERROR");
    assert_eq!(count().await, 1);
}
