""""Why this clip?": which body part and which moment of the clip each word of the prompt matched."""

from __future__ import annotations

from ..wire import Reply, WireError
from .motion import ClipRef
from .status import session, set_status


def explain(service, clip: ClipRef, query: str, *, wait: bool = False):
    """Ask the backend to break the clip's score down by word; fills `WindowManager.mofind.explanation`."""
    query = query.strip()
    if not query:
        raise ValueError("'Why this clip?' needs a prompt: search with words first.")
    set_status("BUSY", f"Explaining {clip.name}…")
    params = {"query": query, "clip_id": clip.clip_id, "start_frame": clip.start_frame}
    return service.call("explain", params, wait=wait,
                        on_reply=lambda reply: _store_tokens(reply, clip),
                        on_error=lambda failure: set_status("ERROR", failure.message))


def _store_tokens(reply: Reply, clip: ClipRef) -> int:
    tokens = reply.result.get("tokens")
    if not isinstance(tokens, list):
        raise WireError("the explain reply has no 'tokens' list")
    part_names = reply.result.get("part_names") or []
    state = session()
    state.explanation.clear()
    for token in tokens:
        item = state.explanation.add()
        item.word = str(token.get("word", ""))
        part = token.get("part", "")
        item.part = part_names[part] if isinstance(part, int) and 0 <= part < len(part_names) else str(part)
        item.t_start = float(token.get("t_start", 0.0))
        item.t_end = float(token.get("t_end", 0.0))
        item.similarity = float(token.get("similarity", 0.0))
    state.explained_clip = clip.clip_id
    set_status("OK", f"Why {clip.name}: {len(tokens)} words matched")
    return len(tokens)
