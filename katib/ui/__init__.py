"""The web dashboard: ``katib ui``.

A Starlette app (``katib.ui.app.create_app``) that reads experiments through
``katib.sdk.client.KatibClient`` (the local store or the Kubernetes API), serves a JSON API
(documented in ``katib.ui.api``) and a page per experiment and trial built from vanilla
JavaScript modules under ``static/``; the charts are ``katib.visualization.figures`` drawn by
the Plotly bundled with the ``plotly`` package, so nothing is fetched from the internet.

Starlette, uvicorn and plotly are the ``ui`` extra (``pip install 'katib-lite[ui]'``); this
package is imported only by ``katib ui``, so ``import katib`` never needs them.
"""
