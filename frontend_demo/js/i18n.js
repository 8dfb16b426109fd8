// @ts-check
/**
 * UI strings: Chinese by default, English available (`?ui=en`, or the toggle; remembered).
 */

/** @type {Record<"zh"|"en", Record<string, string>>} */
const STRINGS = {
  zh: {
    brand: "砚 Inkstone",
    studentTitle: "作文实时批改",
    teacherTitle: "班级实时看板",
    editorLabel: "作文正文",
    placeholder: "在这里写作文……（支持中文输入法、粘贴、撤销）",
    "state.idle": "未连接",
    "state.connecting": "连接中…",
    "state.live": "实时",
    "state.reconnecting": "重新连接中…",
    "state.offline": "离线",
    "state.failed": "无法登录",
    queued: "{n} 处修改待同步",
    saved: "已保存",
    switchLang: "English",
    overall: "总评",
    noOverall: "暂无模型评分（仅规则提示）",
    scoresTitle: "实时评分",
    hintsTitle: "修改提示",
    statsTitle: "字数统计",
    timelineTitle: "总评随篇幅变化",
    timelineEmpty: "写得更多一些，这里会画出总评的变化。",
    noHints: "暂无提示，继续写吧。",
    words: "字数",
    chars: "字符",
    sentences: "句",
    paragraphs: "段",
    apply: "改为“{s}”",
    dismiss: "忽略",
    close: "关闭",
    basis: "依据：{b}",
    "grade.Great": "优",
    "grade.Medium": "中",
    "grade.Bad": "待提高",
    "kind.spelling": "错别字",
    "kind.grammar": "语病",
    "kind.logic": "逻辑",
    "kind.style": "表达",
    "kind.punctuation": "标点",
    "kind.length": "篇幅",
    "trait.content": "内容",
    "trait.structure": "结构",
    "trait.logic": "逻辑",
    "trait.language": "语言",
    "trait.coherence": "连贯",
    "code.misspelling": "错别字",
    "code.faulty_iwo": "语序不当",
    "code.faulty_iwc": "搭配不当",
    "code.faulty_cm": "成分残缺",
    "code.faulty_cr": "成分赘余",
    "code.faulty_sc": "结构混乱",
    "code.faulty_ill": "不合逻辑",
    "code.faulty_am": "表意不明",
    "code.faulty_sentence": "病句",
    "code.repeated_word": "词语重复",
    "code.long_sentence": "句子过长",
    "code.missing_end_punctuation": "缺句末标点",
    "code.repeated_punctuation": "标点连用",
    "code.unbalanced_bracket": "括号不配对",
    "code.unbalanced_quote": "引号不配对",
    "code.halfwidth_punctuation": "半角标点",
    "code.mixed_quotes": "引号混用",
    "code.space_between_cjk": "多余空格",
    "code.overused_connective": "连接词过多",
    "code.a_an": "a/an 误用",
    "code.lowercase_start": "句首未大写",
    "code.lowercase_i": "小写 i",
    "code.double_space": "多个空格",
    "code.space_before_punctuation": "标点前空格",
    hintListHelp: "F8 / Shift+F8：在正文中跳到下一个 / 上一个提示；Alt+Enter：操作当前提示；Esc：关闭。",
    loginTitle: "开发模式登录",
    loginHelp: "服务器处于开发模式：填写信息即可获取测试令牌。正式使用时请通过带 ?token= 的链接进入。",
    user: "用户名",
    classId: "班级",
    docId: "作文编号（可选）",
    role: "身份",
    student: "学生",
    teacher: "教师",
    login: "进入",
    loginFailed: "无法获取令牌：{e}",
    devMode: "开发模式",
    authFailed: "登录失败：{e}",
    docTooLarge: "作文超出长度上限，超出部分无法保存。",
    overloaded: "批改服务繁忙，提示会稍后出现。",
    classGrid: "全班学生",
    heatTitle: "全班常见问题",
    heatEmpty: "暂无问题。",
    heatStudents: "{n} 名学生",
    heatStudentsUnit: "名学生",
    heatHints: "{n} 处",
    filterOn: "筛选：{c}",
    clearFilter: "清除筛选",
    students: "{n} 名学生",
    online: "在线",
    idle: "暂停",
    offline: "离线",
    lastActivity: "最近活动",
    never: "—",
    justNow: "刚刚",
    secondsAgo: "{n} 秒前",
    minutesAgo: "{n} 分钟前",
    back: "返回全班",
    mirrorTitle: "{s} 的作文（只读，实时）",
    noStudents: "还没有学生开始写作。学生打开作文页后会出现在这里。",
    openMirror: "查看 {s} 的作文",
    hintsCount: "{n} 条提示",
    kindCounts: "提示分类",
  },
  en: {
    brand: "Inkstone",
    studentTitle: "Live essay feedback",
    teacherTitle: "Live classroom",
    editorLabel: "Essay text",
    placeholder: "Write your essay here… (IME, paste and undo all work)",
    "state.idle": "Not connected",
    "state.connecting": "Connecting…",
    "state.live": "Live",
    "state.reconnecting": "Reconnecting…",
    "state.offline": "Offline",
    "state.failed": "Sign-in failed",
    queued: "{n} change(s) queued",
    saved: "Saved",
    switchLang: "中文",
    overall: "Overall",
    noOverall: "No model score (rule hints only)",
    scoresTitle: "Live scores",
    hintsTitle: "Hints",
    statsTitle: "Statistics",
    timelineTitle: "Overall score as the draft grows",
    timelineEmpty: "Keep writing; the overall score will be plotted here.",
    noHints: "No hints yet. Keep writing.",
    words: "Words",
    chars: "Characters",
    sentences: "Sentences",
    paragraphs: "Paragraphs",
    apply: "Change to “{s}”",
    dismiss: "Dismiss",
    close: "Close",
    basis: "Basis: {b}",
    "grade.Great": "Great",
    "grade.Medium": "Medium",
    "grade.Bad": "Needs work",
    "kind.spelling": "Spelling",
    "kind.grammar": "Grammar",
    "kind.logic": "Logic",
    "kind.style": "Style",
    "kind.punctuation": "Punctuation",
    "kind.length": "Length",
    "trait.content": "Content",
    "trait.structure": "Structure",
    "trait.logic": "Logic",
    "trait.language": "Language",
    "trait.coherence": "Coherence",
    "code.misspelling": "Misspelling",
    "code.faulty_iwo": "Word order",
    "code.faulty_iwc": "Collocation",
    "code.faulty_cm": "Missing constituent",
    "code.faulty_cr": "Redundant constituent",
    "code.faulty_sc": "Mixed structure",
    "code.faulty_ill": "Illogical",
    "code.faulty_am": "Ambiguous",
    "code.faulty_sentence": "Faulty sentence",
    "code.repeated_word": "Repeated word",
    "code.long_sentence": "Long sentence",
    "code.missing_end_punctuation": "Missing end punctuation",
    "code.repeated_punctuation": "Repeated punctuation",
    "code.unbalanced_bracket": "Unmatched bracket",
    "code.unbalanced_quote": "Unmatched quote",
    "code.halfwidth_punctuation": "Half-width punctuation",
    "code.mixed_quotes": "Mixed quotes",
    "code.space_between_cjk": "Space between characters",
    "code.overused_connective": "Overused connective",
    "code.a_an": "a / an",
    "code.lowercase_start": "Lowercase sentence start",
    "code.lowercase_i": "Lowercase i",
    "code.double_space": "Double space",
    "code.space_before_punctuation": "Space before punctuation",
    hintListHelp: "F8 / Shift+F8: next / previous hint in the text; Alt+Enter: act on it; Esc: close.",
    loginTitle: "Dev-mode sign-in",
    loginHelp: "The server runs in dev mode: fill this in to get a test token. Real users arrive with a ?token= link.",
    user: "User",
    classId: "Class",
    docId: "Essay id (optional)",
    role: "Role",
    student: "Student",
    teacher: "Teacher",
    login: "Enter",
    loginFailed: "Could not get a token: {e}",
    devMode: "Dev mode",
    authFailed: "Sign-in failed: {e}",
    docTooLarge: "The essay is over the length limit; the excess cannot be saved.",
    overloaded: "The analysis service is busy; hints will come a little later.",
    classGrid: "Students",
    heatTitle: "Most frequent issues in the class",
    heatEmpty: "No issues yet.",
    heatStudents: "{n} students",
    heatStudentsUnit: "students",
    heatHints: "{n} hints",
    filterOn: "Filter: {c}",
    clearFilter: "Clear filter",
    students: "{n} students",
    online: "Online",
    idle: "Idle",
    offline: "Offline",
    lastActivity: "Last activity",
    never: "—",
    justNow: "just now",
    secondsAgo: "{n}s ago",
    minutesAgo: "{n} min ago",
    back: "Back to class",
    mirrorTitle: "{s}'s essay (read-only, live)",
    noStudents: "No student has started writing yet. Students appear here once they open the essay page.",
    openMirror: "Open {s}'s essay",
    hintsCount: "{n} hints",
    kindCounts: "Hints by kind",
  },
};

/** @returns {"zh"|"en"} */
function initialLang() {
  const q = new URLSearchParams(location.search).get("ui");
  if (q === "en" || q === "zh") return q;
  try {
    const saved = localStorage.getItem("inkstone.ui");
    if (saved === "en" || saved === "zh") return saved;
  } catch { /* storage may be blocked */ }
  return "zh";
}

/** @type {"zh"|"en"} */
export let lang = initialLang();

/** @param {"zh"|"en"} next */
export function setLang(next) {
  lang = next;
  try { localStorage.setItem("inkstone.ui", next); } catch { /* ignore */ }
  document.documentElement.lang = next === "zh" ? "zh-CN" : "en";
}

/**
 * Translate `key`, filling `{name}` placeholders.
 * @param {string} key
 * @param {Record<string, string|number>} [vars]
 */
export function t(key, vars = {}) {
  const s = STRINGS[lang][key] ?? STRINGS.zh[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
}

/** Display name of a hint code. @param {string} code */
export function codeName(code) {
  const key = `code.${code}`;
  return STRINGS[lang][key] ?? STRINGS.zh[key] ?? code;
}

/** Fill every `[data-i18n]` (text) and `[data-i18n-attr="attr:key,…"]` element under `root`. */
export function translate(root = document.body) {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(/** @type {string} */ (el.getAttribute("data-i18n")));
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of /** @type {string} */ (el.getAttribute("data-i18n-attr")).split(",")) {
      const [attr, key] = pair.split(":");
      el.setAttribute(attr.trim(), t(key.trim()));
    }
  }
}
