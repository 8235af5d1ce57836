"""Load each service's settings class from the rendered ConfigMaps (+ placeholders for the
variables the Deployments take from Secrets) and fail on keys that are not settings fields
(typos would otherwise be silently ignored) or on settings the class refuses."""
import os, sys, yaml
from chat_auth.settings import AuthSettings
from chat_messages.settings import MessagesSettings
from chat_gateway.settings import GatewaySettings
from chat_presence.settings import PresenceSettings
from chat_media.settings import MediaSettings
from chat_search.settings import SearchSettings
classes = {"AUTH_": AuthSettings, "MESSAGES_": MessagesSettings, "GATEWAY_": GatewaySettings,
           "PRESENCE_": PresenceSettings, "MEDIA_": MediaSettings, "SEARCH_": SearchSettings}
bad = 0
for path in sys.argv[1:]:
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    # what the Deployments read from Secrets (chat-nats, chat-database, chat-media, chat-search)
    from_secrets = {e["name"] for d in docs if d.get("kind") == "Deployment"
                    for c in d["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])
                    if "secretKeyRef" in e.get("valueFrom", {})}
    for d in docs:
        if d.get("kind") != "ConfigMap": continue
        if all("." in k for k in d["data"]): continue  # files (chat-nats-config), not settings
        data = d["data"]; prefix = next(iter(data)).split("_")[0] + "_"; cls = classes[prefix]
        unknown = [k for k in data if k[len(prefix):].lower() not in cls.model_fields]
        for k in [k for k in os.environ if k.startswith(tuple(classes))]: del os.environ[k]
        os.environ.update(data)
        for k in (k for k in from_secrets if k.startswith(prefix)):
            os.environ[k] = "postgresql+asyncpg://u:p@h/db" if k.endswith("_DATABASE_URL") else "placeholder"
        try:
            s = cls()
        except Exception as e:
            print(path.split("/")[-1], d["metadata"]["name"], "refused:", e); bad += 1; continue
        print(path.split("/")[-1], d["metadata"]["name"], "unknown keys:", unknown, "js_replicas", s.js_replicas, "host", s.host)
        bad += len(unknown)
sys.exit(1 if bad else 0)
