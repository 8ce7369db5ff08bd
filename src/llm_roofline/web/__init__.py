"""The local web calculator (`llm-roofline serve`): a page and a JSON API over the Python API."""
