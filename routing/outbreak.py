"""Which reports count towards an outbreak: contagious symptoms (fever, vomiting, rash, diarrhoea)."""

from __future__ import annotations

# Symptom words → the word a nurse reads in a grouped alert ("三年级2班 1小时内 4 例发热").
_SYMPTOMS: dict[str, tuple[str, ...]] = {
    "发热": ("发烧", "发热", "高烧", "低烧", "烧起来", "体温高", "fever", "temperature", "發燒", "發熱"),
    "呕吐": ("呕吐", "吐了", "想吐", "嘔吐", "vomit", "throwing up", "threw up"),
    "皮疹": ("皮疹", "出疹", "疹子", "红疹", "水痘", "手足口", "rash", "chickenpox", "chicken pox"),
    "腹泻": ("腹泻", "拉肚子", "拉稀", "腹瀉", "diarrh"),
}
_NEGATIONS = ("没发烧", "没有发烧", "不发烧", "退烧了", "烧退了", "没吐", "no fever", "not sick")


def contagious_kind(text: str) -> str | None:
    """The symptom group a report names, or None (negated mentions do not count)."""
    lowered = text.lower()
    if any(n in lowered for n in _NEGATIONS):
        return None
    for kind, words in _SYMPTOMS.items():
        if any(word in lowered for word in words):
            return kind
    return None


def is_contagious(text: str) -> bool:
    return contagious_kind(text) is not None
