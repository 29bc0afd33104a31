# One image for every Memestream process: the API (the default command), the workers
# (`python -m streams worker --role <role>`) and the one-shot `memestream migrate|topics`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Fonts the renderer draws captions with (Latin, most scripts, colour emoji).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        fonts-dejavu-core fonts-dejavu-extra fonts-noto-core fonts-noto-extra \
        fonts-noto-color-emoji fonts-bebas-neue fonts-comic-neue \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 --user-group app

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so a source change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies'].get('otlp', [])))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# The source. Editable install: the code finds schemas/ and templates/ next to its packages
# (domain.settings.PROJECT_ROOT), so the tree stays in /app.
COPY . .
RUN pip install --no-deps -e . \
    && install -m 0755 deploy/docker/entrypoint.sh /usr/local/bin/memestream-entrypoint \
    && python -m compileall -q api domain producers sinks streams memestream

USER app
# Every Path setting the processes write to, in /tmp: relative defaults resolve against /app
# (PROJECT_ROOT), which `app` cannot write and Kubernetes mounts read-only. docker-compose.yml
# and deploy/generate.py set the same values; these cover a bare `docker run`.
ENV CACHE_DIR=/tmp/cache \
    STACK_DIR=/tmp/stack \
    WORKER_DATA_DIR=/tmp/faust \
    UPLOAD_TMP_DIR=/tmp/uploads \
    STORAGE_PATH=/tmp/objects \
    API_HOST=0.0.0.0 \
    API_PORT=8000
EXPOSE 8000 6066 6067 6068
ENTRYPOINT ["memestream-entrypoint"]
# `memestream api` is uvicorn with the project's options (memestream/stack/apps.py): slow-client
# timeouts, and proxy headers believed only from FORWARDED_ALLOW_IPS (unset: from nobody).
CMD ["memestream", "api"]
