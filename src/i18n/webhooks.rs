//! Strings for Outgoing webhooks (endpoints, deliveries): `(key, en, pt-BR)`, as in `messages.rs`.

pub(super) static MESSAGES: &[(&str, &str, &str)] = &[
    ("portal.nav.webhooks", "Webhooks", "Webhooks"),
    (
        "webhooks.lead",
        "Send events to your own systems (scheduling, CRM, n8n, Make, Zapier) as they happen. Each request is signed according to the Standard Webhooks specification.",
        "Envie eventos para os seus sistemas (agenda, CRM, n8n, Make, Zapier) assim que acontecem. Cada requisição é assinada conforme a especificação Standard Webhooks.",
    ),
    ("webhooks.add", "Add endpoint", "Adicionar endpoint"),
    ("webhooks.url", "Endpoint URL", "URL do endpoint"),
    (
        "webhooks.url.hint",
        "HTTPS on a public address. We POST JSON to it and wait up to 10 seconds.",
        "HTTPS em um endereço público. Enviamos JSON por POST e esperamos até 10 segundos.",
    ),
    (
        "webhooks.description",
        "Description (optional)",
        "Descrição (opcional)",
    ),
    ("webhooks.events", "Events", "Eventos"),
    (
        "webhooks.include_text",
        "Include message text",
        "Incluir o texto das mensagens",
    ),
    (
        "webhooks.include_text.hint",
        "Off by default: events carry only ids and status. When on, message events also carry the text, and this endpoint is listed as a recipient of each contact's data in the processing record.",
        "Desligado por padrão: os eventos levam só ids e status. Ligado, os eventos de mensagem levam também o texto, e este endpoint passa a constar como destinatário dos dados de cada contato no registro de tratamento.",
    ),
    (
        "webhooks.none",
        "No endpoints yet.",
        "Nenhum endpoint ainda.",
    ),
    (
        "webhooks.created",
        "Endpoint added.",
        "Endpoint adicionado.",
    ),
    ("webhooks.secret", "Signing secret", "Segredo de assinatura"),
    (
        "webhooks.secret_once",
        "Copy it now: it is shown only once. Use it to verify the webhook-signature header.",
        "Copie agora: ele é mostrado uma única vez. Use-o para verificar o cabeçalho webhook-signature.",
    ),
    (
        "webhooks.verify_hint",
        "Verify each request with a Standard Webhooks library: the signature covers the webhook-id, the webhook-timestamp and the body. Failed deliveries are retried for about a day.",
        "Verifique cada requisição com uma biblioteca Standard Webhooks: a assinatura cobre o webhook-id, o webhook-timestamp e o corpo. Entregas que falham são repetidas por cerca de um dia.",
    ),
    ("webhooks.state", "State", "Estado"),
    ("webhooks.with_text", "with text", "com texto"),
    ("webhooks.last_success", "Last success", "Último sucesso"),
    ("webhooks.last_failure", "Last failure", "Última falha"),
    (
        "webhooks.disabled_failing",
        "Disabled: kept failing",
        "Desativado: falhas repetidas",
    ),
    (
        "webhooks.failing.title",
        "A webhook endpoint was disabled",
        "Um endpoint de webhook foi desativado",
    ),
    (
        "webhooks.failing.body",
        "Its deliveries failed for about a day, so we stopped sending. Fix the receiver, enable the endpoint again and replay what it missed.",
        "As entregas falharam por cerca de um dia, então paramos de enviar. Corrija o receptor, ative o endpoint de novo e reenvie o que ele perdeu.",
    ),
    ("webhooks.test", "Send test event", "Enviar evento de teste"),
    (
        "webhooks.test.queued",
        "Test event queued: see the delivery log.",
        "Evento de teste na fila: veja o registro de entregas.",
    ),
    (
        "webhooks.test.disabled",
        "Enable the endpoint first.",
        "Ative o endpoint primeiro.",
    ),
    ("webhooks.replay", "Replay", "Reenviar"),
    (
        "webhooks.replay.queued",
        "Delivery queued again, with the same webhook-id.",
        "Entrega na fila de novo, com o mesmo webhook-id.",
    ),
    (
        "webhooks.replay.pending",
        "That delivery is still on its way.",
        "Essa entrega ainda está a caminho.",
    ),
    (
        "webhooks.deleted",
        "Endpoint removed.",
        "Endpoint removido.",
    ),
    (
        "webhooks.delete_confirm",
        "Remove this endpoint and its delivery log?",
        "Remover este endpoint e seu registro de entregas?",
    ),
    ("webhooks.log", "Delivery log", "Registro de entregas"),
    (
        "webhooks.log.none",
        "Nothing sent yet.",
        "Nada enviado ainda.",
    ),
    ("webhooks.log.when", "When", "Quando"),
    ("webhooks.log.event", "Event", "Evento"),
    (
        "webhooks.log.attempts",
        "Attempts (response, time)",
        "Tentativas (resposta, tempo)",
    ),
    ("webhooks.log.next", "Next attempt:", "Próxima tentativa:"),
    ("webhooks.delivery.pending", "Pending", "Pendente"),
    ("webhooks.delivery.delivered", "Delivered", "Entregue"),
    ("webhooks.delivery.failed", "Failed", "Falhou"),
    (
        "webhooks.events.none",
        "Choose at least one event.",
        "Escolha pelo menos um evento.",
    ),
    (
        "webhooks.events.invalid",
        "Unknown event.",
        "Evento desconhecido.",
    ),
    (
        "webhooks.description.long",
        "The description is too long (200 characters at most).",
        "A descrição é longa demais (no máximo 200 caracteres).",
    ),
    (
        "recipient.webhook",
        "Webhook endpoint",
        "Endpoint de webhook",
    ),
    (
        "mail.webhook_disabled.subject",
        "{}: a webhook endpoint was disabled",
        "{}: um endpoint de webhook foi desativado",
    ),
    (
        "mail.webhook_disabled.body",
        "Deliveries to {} failed for about a day.",
        "As entregas para {} falharam por cerca de um dia.",
    ),
    (
        "mail.webhook_disabled.action",
        "Open the endpoint",
        "Abrir o endpoint",
    ),
];
