"""The one error type bad input produces, before any resource is registered."""


class ConfigError(Exception):
    """A configuration or secrets problem, phrased as: which key, which value, what to do."""

    def __init__(self, key: str, value: object, problem: str, fix: str) -> None:
        self.key = key
        self.value = value
        self.problem = problem
        super().__init__(f"{key} = {value!r}: {problem}. Fix: {fix}.")
