"""The client's variables (BUILDFARM_ARTIFACTS_URL, _CA) share the service's prefix: a shell that exported
them for `buildfarm submit` can still start `buildfarm artifacts serve`, and no service setting hides
behind them."""

from buildfarm.agent.settings import AgentSettings
from buildfarm.artifacts.settings import ArtifactSettings
from buildfarm.settings import CLIENT_VARIABLES, setting_variables, unknown_variables
from buildfarm.transfer.client import CA_SETTING, URL_SETTING


def test_client_variables_are_nobodys_unknown_settings() -> None:
    environ = {URL_SETTING: "https://artifacts.example.com", CA_SETTING: "/etc/ca.pem"}
    assert set(environ) <= set(CLIENT_VARIABLES)
    for model in (ArtifactSettings, AgentSettings):
        assert unknown_variables(environ, model) == []
    assert not set(CLIENT_VARIABLES) & set(setting_variables(ArtifactSettings))
