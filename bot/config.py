"""Settings, read from the environment (or a .env file). Secrets never live in the repo."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger(__name__)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = Field("sqlite+aiosqlite:///./data/assistant.db", description="SQLAlchemy async URL")
    database_schema: str | None = Field(None, description="PostgreSQL schema to use (default: the server's)")
    content_dir: Path = Field(PROJECT_ROOT / "content", description="folder of the content files")
    content_watch: bool = Field(True, description="reload content when its files change")
    default_lang: str = Field("zh", description="language for users whose language is unknown: zh, en or ko")
    http_host: str = Field("127.0.0.1", description="address of the web server (local chat, API)")
    http_port: int = Field(8080, description="port of the web server")
    telegram_bot_token: SecretStr | None = Field(None, description="Telegram bot token; unset: no Telegram")
    telegram_api_base_url: str = Field("https://api.telegram.org/bot", description="Bot API base URL")
    telegram_webhook_url: str | None = Field(None, description="public URL of /telegram/webhook; unset: polling")
    telegram_webhook_secret: SecretStr | None = Field(None, description="secret token Telegram sends with updates")
    flood_rate: float = Field(3.0, description="messages a second one user may keep sending")
    flood_burst: int = Field(30, description="messages one user may send at once before flood control")
    delivery_rate: float = Field(25.0, description="announcement messages per second, all chats together")
    delivery_lease_seconds: float = Field(60.0, description="when another worker may retake an unfinished delivery")
    wechat_token: SecretStr | None = Field(None, description="WeChat Official Account token; unset: no WeChat")
    wechat_appid: str = Field("", description="WeChat AppID")
    wechat_encoding_aes_key: SecretStr | None = Field(None, description="EncodingAESKey for safe mode")
    wechat_previous_encoding_aes_key: SecretStr | None = Field(None, description="the previous key, during a rotation")
    wechat_app_secret: SecretStr | None = Field(None, description="AppSecret, for announcements and the custom menu")
    wechat_api_base_url: str = Field("https://api.weixin.qq.com", description="WeChat API base URL")
    pseudonym_key: SecretStr | None = Field(None, description="key for hashing user ids in the log")
    pseudonym_key_file: Path = Field(Path("data/pseudonym.key"), description="where the key is kept if not set")
    trusted_proxies: str = Field(
        "", description="comma-separated addresses of reverse proxies whose X-Forwarded-For names the client"
    )
    log_level: str = Field("INFO", description="logging level")

    def wechat(self):  # -> bot.channels.wechat.WeChatConfig | None (imported lazily)
        """The WeChat settings, or None when WeChat is not configured."""
        from bot.channels.wechat import WeChatConfig

        if self.wechat_token is None:
            return None
        aes_keys = (self.wechat_encoding_aes_key, self.wechat_previous_encoding_aes_key)
        keys = [key.get_secret_value() for key in aes_keys if key]
        secret = self.wechat_app_secret.get_secret_value() if self.wechat_app_secret else None
        return WeChatConfig(
            self.wechat_token.get_secret_value(), self.wechat_appid, keys, secret, self.wechat_api_base_url
        )

    def secrets(self) -> list[str]:
        """Every secret value, to keep them out of the logs."""
        values = [
            self.telegram_bot_token,
            self.telegram_webhook_secret,
            self.wechat_token,
            self.wechat_encoding_aes_key,
            self.wechat_previous_encoding_aes_key,
            self.wechat_app_secret,
            self.pseudonym_key,
        ]
        return [value.get_secret_value() for value in values if value is not None]

    def pseudonymisation_key(self) -> bytes:
        """The key from PSEUDONYM_KEY, else from its file, created once with a random key."""
        if self.pseudonym_key is not None:
            return self.pseudonym_key.get_secret_value().encode()
        path = self.pseudonym_key_file
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
            log.info("created a new pseudonymisation key in %s", path)
        return path.read_text().strip().encode()
