"""The user guide section of each algorithm, for the Processing dialog's Help button.

The guide is ``docs/user-guide.md`` in the plugin's repository (``repository`` in metadata.txt);
each algorithm's section heading is ``<display name> (`msgfm:<id>`...)``, and the URL's anchor is
that heading as GitHub slugs it.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

GUIDE_PATH = "blob/main/docs/user-guide.md"
_METADATA = Path(__file__).resolve().parent.parent / "metadata.txt"


def repository_url() -> str:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(_METADATA, encoding="utf-8")
    return parser.get("general", "repository", fallback="").rstrip("/")


def heading_anchor(heading: str) -> str:
    """GitHub's anchor for a markdown heading: lower case, punctuation dropped, spaces to '-'."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def guide_heading(display_name: str, algorithm_id: str) -> str:
    """The heading of an algorithm's section in the user guide."""
    return f"{display_name} (`msgfm:{algorithm_id}`)"


def help_url(display_name: str, algorithm_id: str) -> str:
    """The URL of an algorithm's section of the user guide ('' without a repository)."""
    repository = repository_url()
    if not repository:
        return ""
    anchor = heading_anchor(guide_heading(display_name, algorithm_id))
    return f"{repository}/{GUIDE_PATH}#{anchor}"
