"""NodeId strings and browse paths, resolved against one server's namespace array."""

from __future__ import annotations

from collections.abc import Sequence

from asyncua import ua


def resolve_node_id(text: str, namespaces: Sequence[str]) -> ua.NodeId:
    """Parse ``ns=2;s=R1.do_pct`` or ``nsu=<uri>;s=R1.do_pct`` into a NodeId of this server.

    Raises ValueError for unparsable text or a namespace URI the server does not have.
    """
    try:
        node_id = ua.NodeId.from_string(text)
    except Exception as exc:  # asyncua raises UaStringParsingError, ValueError or others
        raise ValueError(f"not a NodeId: {text!r} ({exc})") from exc
    uri = getattr(node_id, "NamespaceUri", None)
    if uri:
        try:
            index = list(namespaces).index(uri)
        except ValueError:
            raise ValueError(f"namespace {uri!r} of {text!r} is not on the server") from None
        return ua.NodeId(node_id.Identifier, index, node_id.NodeIdType)
    return ua.NodeId(node_id.Identifier, node_id.NamespaceIndex, node_id.NodeIdType)


def browse_path(text: str, default_namespace: int) -> ua.RelativePath:
    """``R1/Sensors/do_pct`` (below Objects) as a RelativePath of hierarchical references.

    A component may name its namespace index (``3:Name``); others use ``default_namespace``.
    """
    elements = []
    for part in (p for p in text.strip("/").split("/") if p):
        prefix, sep, name = part.partition(":")
        index, name = (int(prefix), name) if sep and prefix.isdigit() else (default_namespace, part)
        elements.append(
            ua.RelativePathElement(
                ReferenceTypeId=ua.NodeId(ua.ObjectIds.HierarchicalReferences),
                IsInverse=False,
                IncludeSubtypes=True,
                TargetName=ua.QualifiedName(name, index),
            )
        )
    if not elements:
        raise ValueError(f"empty browse path {text!r}")
    return ua.RelativePath(Elements=elements)


def target_node_id(result: ua.BrowsePathResult) -> ua.NodeId | None:
    """The first target of a TranslateBrowsePathsToNodeIds result, None when it failed."""
    if not result.StatusCode.is_good() or not result.Targets:
        return None
    target = result.Targets[0].TargetId
    return ua.NodeId(target.Identifier, target.NamespaceIndex, target.NodeIdType)
