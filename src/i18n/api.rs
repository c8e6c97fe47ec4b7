//! Strings for The tenant API (`/api/v1`) and its tokens page: `(key, en, pt-BR)`, as in `messages.rs`.

pub(super) static MESSAGES: &[(&str, &str, &str)] = &[
    ("portal.nav.api", "API", "API"),
    // Problem titles (RFC 9457 `title`), by status.
    ("api.status.400", "Bad request", "Requisição inválida"),
    ("api.status.401", "Unauthorized", "Não autorizado"),
    ("api.status.403", "Forbidden", "Proibido"),
    ("api.status.404", "Not found", "Não encontrado"),
    (
        "api.status.405",
        "Method not allowed",
        "Método não permitido",
    ),
    (
        "api.status.408",
        "Request timeout",
        "Tempo da requisição esgotado",
    ),
    ("api.status.409", "Conflict", "Conflito"),
    ("api.status.413", "Payload too large", "Corpo grande demais"),
    (
        "api.status.415",
        "Unsupported media type",
        "Tipo de conteúdo não suportado",
    ),
    (
        "api.status.422",
        "Unprocessable content",
        "Conteúdo não processável",
    ),
    ("api.status.429", "Too many requests", "Requisições demais"),
    (
        "api.status.500",
        "Internal server error",
        "Erro interno do servidor",
    ),
    (
        "api.status.503",
        "Service unavailable",
        "Serviço indisponível",
    ),
    // Problem details.
    (
        "api.problem.not_found",
        "There is no such resource in this tenant.",
        "Não existe esse recurso neste cliente.",
    ),
    (
        "api.problem.unauthorized",
        "Send a valid, unexpired and unrevoked API token as `Authorization: Bearer sgm_…`.",
        "Envie um token de API válido, não expirado e não revogado como `Authorization: Bearer sgm_…`.",
    ),
    (
        "api.problem.rate_limited",
        "This token made too many requests. Wait for the time in Retry-After.",
        "Este token fez requisições demais. Aguarde o tempo indicado em Retry-After.",
    ),
    (
        "api.problem.scope_missing",
        "This token lacks the scope this operation needs.",
        "Este token não tem o escopo que esta operação exige.",
    ),
    (
        "api.problem.too_large",
        "The request body is too large.",
        "O corpo da requisição é grande demais.",
    ),
    (
        "api.problem.body_unreadable",
        "The request body could not be read.",
        "Não foi possível ler o corpo da requisição.",
    ),
    (
        "api.problem.invalid_json",
        "The request body is not valid JSON.",
        "O corpo da requisição não é um JSON válido.",
    ),
    (
        "api.problem.nul",
        "Text may not contain the NUL character.",
        "O texto não pode conter o caractere NUL.",
    ),
    (
        "api.problem.invalid_fields",
        "The JSON has missing, unknown or mistyped fields.",
        "O JSON tem campos ausentes, desconhecidos ou de tipo errado.",
    ),
    (
        "api.problem.invalid_cursor",
        "The cursor is not one this API gave out.",
        "O cursor não é um dos que esta API forneceu.",
    ),
    (
        "api.problem.invalid_status",
        "Unknown status filter.",
        "Filtro de status desconhecido.",
    ),
    (
        "api.problem.invalid_limit",
        "limit must be between 1 and 100 (offset up to 100,000).",
        "limit deve estar entre 1 e 100 (offset até 100.000).",
    ),
    (
        "api.problem.invalid_query",
        "The search is too long.",
        "A busca é longa demais.",
    ),
    (
        "api.problem.idempotency_key",
        "Idempotency-Key must be 1 to 200 visible characters.",
        "Idempotency-Key deve ter de 1 a 200 caracteres visíveis.",
    ),
    (
        "api.problem.idempotency_mismatch",
        "This Idempotency-Key was already used for a different request.",
        "Esta Idempotency-Key já foi usada em outra requisição.",
    ),
    (
        "api.problem.creator_gone",
        "The member who created this token no longer exists; create a new token.",
        "O membro que criou este token não existe mais; crie um novo token.",
    ),
    (
        "api.problem.text_or_template",
        "Send either text or template_id (with params), not both.",
        "Envie text ou template_id (com params), não os dois.",
    ),
    (
        "api.problem.too_long",
        "A field is longer than allowed.",
        "Um campo é mais longo do que o permitido.",
    ),
    // Scopes.
    (
        "api.scope.conversations_read",
        "read conversations, their messages and contacts",
        "ler conversas, suas mensagens e contatos",
    ),
    (
        "api.scope.messages_send",
        "send messages",
        "enviar mensagens",
    ),
    (
        "api.scope.contacts_write",
        "change contacts' names, notes and tags",
        "alterar nomes, notas e etiquetas de contatos",
    ),
    (
        "api.scope.review",
        "review AI drafts (approve, edit, reject)",
        "revisar rascunhos da IA (aprovar, editar, rejeitar)",
    ),
    (
        "api.scope.knowledge_manage",
        "manage the knowledge base",
        "gerenciar a base de conhecimento",
    ),
    (
        "api.scope.privacy_manage",
        "privacy requests",
        "solicitações de privacidade",
    ),
    // The tokens page.
    (
        "api.tokens.lead",
        "Tokens let your own systems (scheduling, CRM, n8n, Make, Zapier) use SigmaAI's API. Each call is recorded in the audit log with the token's name.",
        "Tokens permitem que seus sistemas (agenda, CRM, n8n, Make, Zapier) usem a API do SigmaAI. Cada chamada fica no registro de auditoria com o nome do token.",
    ),
    ("api.tokens.created", "Token created.", "Token criado."),
    (
        "api.tokens.shown_once",
        "Copy it now: it is shown only this once and we keep only a hash of it.",
        "Copie agora: ele só é mostrado desta vez e guardamos apenas um hash dele.",
    ),
    ("api.tokens.token", "New API token", "Novo token de API"),
    ("api.tokens.new", "New token", "Novo token"),
    ("api.tokens.name", "Name", "Nome"),
    ("api.tokens.scopes", "Scopes", "Escopos"),
    ("api.tokens.expiry", "Expires", "Expira"),
    ("api.tokens.never", "Never", "Nunca"),
    ("api.tokens.days", "In {} days", "Em {} dias"),
    ("api.tokens.create", "Create token", "Criar token"),
    (
        "api.tokens.none",
        "No API tokens yet.",
        "Nenhum token de API ainda.",
    ),
    ("api.tokens.created_at", "Created", "Criado"),
    ("api.tokens.expires_at", "Expires", "Expira"),
    ("api.tokens.last_used", "Last used", "Último uso"),
    ("api.tokens.state", "State", "Situação"),
    ("api.tokens.state.active", "Active", "Ativo"),
    ("api.tokens.state.expired", "Expired", "Expirado"),
    ("api.tokens.state.revoked", "Revoked", "Revogado"),
    ("api.tokens.revoke", "Revoke", "Revogar"),
    (
        "api.tokens.revoke_confirm",
        "Revoke this token? Systems using it stop working at once.",
        "Revogar este token? Os sistemas que o usam param de funcionar na hora.",
    ),
    ("api.tokens.revoked", "Token revoked.", "Token revogado."),
    (
        "api.tokens.name_invalid",
        "Give the token a name of up to 80 characters.",
        "Dê ao token um nome de até 80 caracteres.",
    ),
    (
        "api.tokens.scopes_required",
        "Choose at least one scope.",
        "Escolha pelo menos um escopo.",
    ),
    (
        "api.tokens.expiry_invalid",
        "Choose an expiry from the list.",
        "Escolha uma validade da lista.",
    ),
    // The docs page.
    ("api.docs.link", "API reference", "Referência da API"),
    (
        "api.docs.title",
        "SigmaAI API reference",
        "Referência da API do SigmaAI",
    ),
    (
        "api.docs.lead",
        "A JSON API over HTTPS for one tenant's conversations, contacts, review queue and knowledge. Errors are RFC 9457 problem details.",
        "Uma API JSON sobre HTTPS para as conversas, contatos, fila de revisão e conhecimento de um cliente. Erros seguem o RFC 9457 (problem details).",
    ),
    ("api.docs.auth", "Authentication", "Autenticação"),
    (
        "api.docs.auth_text",
        "An admin creates a token on the tenant's API page. Send it on every request; each operation needs the scope shown.",
        "Um administrador cria um token na página API do cliente. Envie-o em toda requisição; cada operação exige o escopo indicado.",
    ),
    ("api.docs.operations", "Operations", "Operações"),
    ("api.docs.method", "Method", "Método"),
    ("api.docs.path", "Path", "Caminho"),
    ("api.docs.summary", "Summary", "Resumo"),
    ("api.docs.scope", "Scope", "Escopo"),
];
