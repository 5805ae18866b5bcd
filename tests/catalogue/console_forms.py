"""What a browser posts when it saves the console's routing form."""

PART_TWO_PREFIXES = ("bandit_", "experiment_", "arm_", "learned_")


def as_rendered(client, url: str, **changes) -> dict:
    """What the routing form posts when it is saved as the page shows it, with `changes` typed in: every field
    holds its stored value (an unticked box is not posted at all, as in a browser)."""
    form = client.get(url).context["form"]
    posted = {}
    for field in form:
        value = field.value()
        if value is True:
            posted[field.html_name] = "on"
        elif value not in (None, False, ""):
            posted[field.html_name] = str(value)
    return {**posted, **changes}


def part_two_as_rendered(client, url: str) -> dict:
    """Only the bandit, experiment and learned fields as the page shows them."""
    return {name: value for name, value in as_rendered(client, url).items() if name.startswith(PART_TWO_PREFIXES)}
