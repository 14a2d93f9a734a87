"""The HTTP ingress: validate, authenticate, de-duplicate, publish order lines to Kafka.

``create_app`` (in ``ingress.app``) wires a Falcon app from settings and collaborators;
``get_app()`` builds the real collaborators for gunicorn.
"""
