"""The web interface of ``vacelab ui``: ``policy`` (what may be read, accepted, served), ``workbench``
(one session's work through vacelab's API, no Gradio) and ``app`` (the Gradio page; the only module here
that imports gradio)."""
