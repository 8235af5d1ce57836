"""Load each service's settings class from the rendered ConfigMaps (+ placeholder secrets)
and fail on keys that are not settings fields (typos would otherwise be silently ignored)."""
import os, sys, yaml
from chat_auth.settings import AuthSettings
from chat_messages.settings import MessagesSettings
from chat_gateway.settings import GatewaySettings
from chat_presence.settings import PresenceSettings
classes = {"AUTH_": AuthSettings, "MESSAGES_": MessagesSettings, "GATEWAY_": GatewaySettings, "PRESENCE_": PresenceSettings}
bad = 0
for path in sys.argv[1:]:
    for d in yaml.safe_load_all(open(path)):
        if not d or d.get("kind") != "ConfigMap": continue
        data = d["data"]; prefix = next(iter(data)).split("_")[0] + "_"; cls = classes[prefix]
        unknown = [k for k in data if k[len(prefix):].lower() not in cls.model_fields]
        for k in [k for k in os.environ if k.startswith(tuple(classes))]: del os.environ[k]
        os.environ.update(data); os.environ[prefix + "DATABASE_URL"] = "postgresql+asyncpg://u:p@h/db"
        os.environ[prefix + "NATS_PASSWORD"] = "placeholder"  # from the chat-nats Secret
        s = cls()
        print(path.split("/")[-1], d["metadata"]["name"], "unknown keys:", unknown, "js_replicas", s.js_replicas, "host", s.host)
        bad += len(unknown)
sys.exit(1 if bad else 0)
