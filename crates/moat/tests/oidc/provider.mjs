// A real OpenID Connect provider (the certified `oidc-provider` package) on 127.0.0.1, for
// moat's SSO tests. Its development sign-in pages accept any login: the login names the
// account, whose e-mail it is; accounts listed in ACCOUNTS get their groups.
//
// usage: node provider.mjs PORT REDIRECT_URI
// Prints "ready <issuer>" once listening. `POST /rotate` (not OIDC) adds a new signing key
// and signs with it from then on, to test key rotation.
import Provider from 'oidc-provider';
import { generateKeyPairSync } from 'node:crypto';

const [port, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const ACCOUNTS = {
  'ana@acme.test': { name: 'Ana Lima', groups: ['engineering', 'moat-admins'] },
  'bo@acme.test': { name: 'Bo Chen', groups: ['engineering'] },
  'eve@evil.test': { name: 'Eve', groups: [] },
};

function signingKey(kid) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };
}

function build(keys) {
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'moat',
      client_secret: 'moat-sso-secret-for-tests',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys },
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    async findAccount(ctx, id) {
      const account = ACCOUNTS[id] ?? { name: id, groups: [] };
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: id, email_verified: true, name: account.name, groups: account.groups };
        },
      };
    },
  });
  provider.proxy = false;
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  return provider;
}

const { createServer } = await import('node:http');
let keys = [signingKey('key-1')];
let provider = build(keys);
const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/rotate') {
    keys = [signingKey(`key-${keys.length + 1}`), ...keys];
    provider = build(keys);
    res.end('rotated');
    return;
  }
  provider.callback()(req, res);
});
server.listen(Number(port), '127.0.0.1', () => console.log(`ready ${issuer}`));
