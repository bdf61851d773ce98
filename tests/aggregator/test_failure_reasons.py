"""A site's refusal is stored as its own message, not as Ray's traceback around it."""

from aggregator.failure_reasons import concise_reason

WRAPPED = (
    "<class 'ray.exceptions.RayTaskError(ClientAppException)'>:<'ray::ClientAppActor.run() (pid=7187)\n"
    "  File \"/work/main/client_site/site_runtime.py\", line 134, in train_round\n"
    "    raise SiteRefusal(f\"{self.name}: {e}\") from e\n"
    "flwr.clientapp.client_app.ClientAppException: \n"
    "Exception ClientAppException occurred. Message: hospital-a: round 1 of run r would raise the "
    "site's epsilon to 10.415 > budget 9.0 (delta=1e-05); refused before training.'>\n"
)


def test_the_sites_own_message_is_kept():
    assert concise_reason(WRAPPED) == (
        "hospital-a: round 1 of run r would raise the site's epsilon to 10.415 > budget 9.0 "
        "(delta=1e-05); refused before training.")


def test_a_plain_reason_is_kept_as_it_is():
    assert concise_reason("  no reply before the round timeout \n") == "no reply before the round timeout"
