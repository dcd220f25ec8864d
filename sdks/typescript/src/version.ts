/** The SDK's version (kept in step with package.json). */
export const VERSION = '0.1.0';
/** Sent as `User-Agent` and `x-sensei-sdk`. */
export const SDK_NAME = `@convosensei/sdk/${VERSION}`;
