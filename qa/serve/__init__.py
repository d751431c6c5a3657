"""Serving a team: the HTTP JSON API, the guard (token, limits) and the engine worker processes.

`app.py` composes them with the Gradio chat into one server; nothing here imports Gradio.
"""
