"""A split environment on /v1/prompts: each `user` is served one version while the split stands (a hash of the
slug and the user, core/prompts.sticky_draw), and over many users the shares are the split's."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.prompts import pick_version, sticky_draw
from portal import services as portal_services
from portal.prompts import services
from tests.gateway import start_gateway, wait_for_usage
from tests.prompts.gateway_prompts import call_prompt, new_version, published

USERS = [f"user-{n}" for n in range(10_000)]


def test_over_ten_thousand_users_a_90_10_split_serves_each_version_its_share_within_one_point():
    served = Counter(pick_version({"3": 90, "4": 10}, rng=sticky_draw(slug="ticker", user=u)) for u in USERS)

    # The draws are fixed (a hash of slug and user): a binomial's standard deviation here is 0.3 points.
    assert abs(served[4] / len(USERS) - 0.10) < 0.01
    assert served[3] + served[4] == len(USERS)


def test_a_user_draws_the_same_version_every_time_and_another_template_draws_afresh():
    first = [pick_version({"1": 50, "2": 50}, rng=sticky_draw(slug="ticker", user=u)) for u in USERS[:200]]
    again = [pick_version({"1": 50, "2": 50}, rng=sticky_draw(slug="ticker", user=u)) for u in USERS[:200]]
    other = [pick_version({"1": 50, "2": 50}, rng=sticky_draw(slug="other", user=u)) for u in USERS[:200]]

    assert first == again
    assert first != other


@pytest.mark.django_db(transaction=True)
def test_a_70_30_split_serves_300_fixed_users_their_shares_within_5_points_and_each_the_same_version_again(
    team, catalogue
):
    template, owner = published(team=team)
    new_version(template, owner, parameters={"temperature": 0.5})
    services.publish_split(template, actor=owner, environment="prod", split={"1": 70, "2": 30})
    key = portal_services.issue_api_key(team=team).secret
    users = USERS[:300]

    def served(user: str) -> str:
        answer = call_prompt(template_url, key, "ticker-summary", {"variables": {"ticker": "A"}, "user": user})
        assert answer.status_code == 200, answer.text
        return answer.headers["x-tollway-prompt"]

    with start_gateway() as gateway:
        template_url = gateway.url
        with ThreadPoolExecutor(4) as pool:
            first = list(pool.map(served, users))
            again = list(pool.map(served, users[:50]))
        records = wait_for_usage(350, timeout_s=30)

    shares = Counter(first)
    # Fixed users and a fixed hash: the draw is the same on every run; a binomial's deviation is 2.6 points.
    assert abs(shares["ticker-summary@2"] / len(users) - 0.30) < 0.05, shares
    assert set(shares) == {"ticker-summary@1", "ticker-summary@2"}
    assert again == first[:50]
    assert Counter(f"{r.prompt}@{r.prompt_version}" for r in records) == shares + Counter(again)
