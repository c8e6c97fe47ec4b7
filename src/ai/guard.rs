//! What the offline answerer must never answer from the knowledge base, whatever matches:
//! emergencies (flagged urgent), medical or diagnostic questions, complaints and requests
//! about the customer's own data. Each goes to a human with the reason shown.
//!
//! Patterns are word sequences over the folded, shorthand-expanded words; a pattern word
//! ending in `*` matches any word starting with it ("atropel*" = atropelado, atropelada).
//! Checked in the order of [`Concern`]: an emergency that is also a medical question is an
//! emergency.

use super::text;

/// Why a message must go to a human before anything is looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Concern {
    Emergency,
    PersonalData,
    Complaint,
    Medical,
}

impl Concern {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Concern::Emergency => "emergency",
            Concern::PersonalData => "personal_data",
            Concern::Complaint => "complaint",
            Concern::Medical => "medical_question",
        }
    }
}

const EMERGENCY: &[&str] = &[
    "atropel*",
    "sangr*",
    "hemorrag*",
    "muita dor",
    "muitas dores",
    "dor forte",
    "dor muito forte",
    "dor insuportavel",
    "dores fortes",
    "nao respira*",
    "nao consegue respirar",
    "nao consigo respirar",
    "falta de ar",
    "desmai*",
    "convuls*",
    "envenen*",
    "intoxic*",
    "engoliu",
    "engoli",
    "emergencia*",
    "urgencia*",
    "urgente",
    "socorro",
    "infart*",
    "avc",
    "dor no peito",
    "inconscient*",
    "parou de respirar",
    "engasg*",
    "acidente",
    "overdose",
    "suicid*",
    "me matar",
    "picad* de cobra",
    "mordid* de cobra",
    "quebrou a perna",
    "caiu da",
    "emergency",
    "emergencies",
    "urgent*",
    "bleed*",
    "hit by a car",
    "run over",
    "ran over",
    "not breath*",
    "trouble breathing",
    "stopped breathing",
    "unconscious",
    "faint*",
    "passed out",
    "seizure*",
    "poison*",
    "swallow*",
    "chest pain",
    "severe pain",
    "lot of pain",
    "so much pain",
    "terrible pain",
    "unbearable",
    "chok*",
    "collaps*",
    "accident",
];

const PERSONAL_DATA: &[&str] = &[
    "meus dados",
    "meu dado",
    "dados pessoais",
    "lgpd",
    "apag* meu*",
    "apag* minha*",
    "exclu* meu*",
    "exclu* minha*",
    "delet* meu*",
    "prontuario*",
    "meu cadastro",
    "meu historico",
    "minha ficha",
    "resultado do meu",
    "resultado dos meus",
    "resultados do meu",
    "resultado da minha",
    "meu resultado",
    "meus resultados",
    "meu exame",
    "meus exames",
    "receita que",
    "my data",
    "personal data",
    "gdpr",
    "my records",
    "medical records",
    "my record",
    "my results",
    "my test results",
    "my file",
    "my information",
    "my details",
    "delete my",
    "erase my",
    "my account",
];

const COMPLAINT: &[&str] = &[
    "reclama*",
    "pessim*",
    "horrivel",
    "absurdo",
    "muito ruim",
    "insatisfeit*",
    "decepcion*",
    "procon",
    "quero reembols*",
    "quero o reembols*",
    "quero meu reembols*",
    "quero meu dinheiro",
    "exijo",
    "estorno",
    "devolver o dinheiro",
    "devolvam",
    "dinheiro de volta",
    "cobrado errado",
    "cobraram errado",
    "cobraram a mais",
    "cobraram duas",
    "cobranca indevida",
    "nunca mais",
    "descaso",
    "falta de respeito",
    "desrespeit*",
    "mal atendid*",
    "mal educad*",
    "grosseir*",
    "grossa",
    "grosso",
    "processar",
    "advogado",
    "vergonha",
    "ninguem responde",
    "ninguem atende",
    "complain*",
    "terrible",
    "awful",
    "horrible",
    "unacceptable",
    "disappoint*",
    "want a refund",
    "want my refund",
    "demand a refund",
    "money back",
    "charged twice",
    "overcharg*",
    "rude",
    "worst",
    "never again",
    "lawyer",
    "sue",
    "nobody answers",
    "ripped off",
    "scam",
];

const MEDICAL: &[&str] = &[
    "e normal",
    "normal que",
    "normal ele",
    "normal ela",
    "o que pode ser",
    "que pode ser",
    "o que sera",
    "o que eu faco",
    "o que faco",
    "que eu faco",
    "devo tomar",
    "posso tomar",
    "posso dar",
    "devo dar",
    "qual remedio",
    "que remedio",
    "algum remedio",
    "remedio pra",
    "remedio para",
    "tomar remedio",
    "dar remedio",
    "medicament*",
    "dose",
    "doses",
    "dosagem",
    "sintoma*",
    "febre",
    "inflam*",
    "inchad*",
    "inchou",
    "infecc*",
    "infeccion*",
    "diagnost*",
    "dor",
    "dores",
    "doi",
    "doendo",
    "vomit*",
    "diarreia",
    "alergi*",
    "ferid*",
    "pus",
    "mancando",
    "manca",
    "nao come",
    "nao quer comer",
    "parou de comer",
    "tosse",
    "tossindo",
    "coceira",
    "se cocando",
    "caroco",
    "antibiotic*",
    "ibuprofeno",
    "paracetamol",
    "dipirona",
    "is it normal",
    "is this normal",
    "what could it be",
    "should i take",
    "can i take",
    "can i give",
    "should i give",
    "medicine*",
    "medication*",
    "dosage",
    "dose",
    "symptom*",
    "fever",
    "swollen",
    "swelling",
    "infect*",
    "diagnos*",
    "pain",
    "hurts",
    "hurting",
    "vomit*",
    "threw up",
    "throwing up",
    "diarrhea",
    "diarrhoea",
    "allerg*",
    "rash",
    "limping",
    "lump",
    "not eating",
    "stopped eating",
    "antibiotic*",
    "ibuprofen",
    "painkiller*",
    "itching",
    "itchy",
    "cough*",
    "sick",
    "doente",
    "what do i do",
    "what should i do",
    "celiac*",
    "perigoso",
    "grave",
    "serious",
    "dangerous",
    "pressao alta",
    "pressao",
];

/// The first concern `text` raises, if any.
pub(crate) fn check(text: &str) -> Option<Concern> {
    let words = text::guard_words(text);
    [
        (Concern::Emergency, EMERGENCY),
        (Concern::PersonalData, PERSONAL_DATA),
        (Concern::Complaint, COMPLAINT),
        (Concern::Medical, MEDICAL),
    ]
    .into_iter()
    .find(|(_, patterns)| patterns.iter().any(|p| matches(&words, p)))
    .map(|(c, _)| c)
}

fn matches(words: &[String], pattern: &str) -> bool {
    let p: Vec<&str> = pattern.split(' ').collect();
    words.windows(p.len()).any(|w| {
        w.iter()
            .zip(&p)
            .all(|(word, pat)| match pat.strip_suffix('*') {
                Some(prefix) => word.starts_with(prefix),
                None => word == pat,
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emergencies_come_first() {
        for m in [
            "meu cachorro foi atropelado!!",
            "estou com muita dor",
            "socorro meu gato engoliu uma agulha",
            "Está sangrando muito, o que eu faço?",
            "my dog was hit by a car",
            "he cant breathe",
            "URGENTE",
        ] {
            assert_eq!(check(m), Some(Concern::Emergency), "{m}");
        }
    }

    #[test]
    fn medical_complaints_and_personal_data() {
        assert_eq!(
            check("é normal ficar inchado depois da extração?"),
            Some(Concern::Medical)
        );
        assert_eq!(
            check("qual remedio posso dar pro meu gato"),
            Some(Concern::Medical)
        );
        assert_eq!(
            check("is it normal that my gums bleed"),
            Some(Concern::Emergency)
        );
        assert_eq!(
            check("should i take ibuprofen before"),
            Some(Concern::Medical)
        );
        assert_eq!(
            check("atendimento pessimo, quero reembolso"),
            Some(Concern::Complaint)
        );
        assert_eq!(check("I want a refund"), Some(Concern::Complaint));
        assert_eq!(
            check("quero apagar meus dados"),
            Some(Concern::PersonalData)
        );
        assert_eq!(
            check("me manda o resultado do meu exame"),
            Some(Concern::PersonalData)
        );
        assert_eq!(check("please delete my data"), Some(Concern::PersonalData));
    }

    #[test]
    fn ordinary_questions_raise_nothing() {
        for m in [
            "oi vcs abrem sabado?",
            "qto custa a limpeza",
            "aceita convenio unimed?",
            "what time do you open on saturday?",
            "do you sell dog food",
            "vocês fazem castração de gata?",
            "quanto tempo dura a consulta",
        ] {
            assert_eq!(check(m), None, "{m}");
        }
    }
}
