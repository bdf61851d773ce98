"""Chinese report bodies (检查所见 / 诊断意见), in the phrasing of a Chinese radiology department."""

from __future__ import annotations

from .measure import Finding
from .report_common import ReportContext, effusion_grade, emphysema_grade, ggo_pattern, is_urgent

LOBES_ZH: tuple[str, ...] = ("右肺上叶", "右肺中叶", "右肺下叶", "左肺上叶", "左肺下叶")
_SIDE = {"right": "右侧", "left": "左侧", "bilateral": "双侧"}
_GRADE = ("轻度", "中度", "重度")
_SIZE = ("少量", "中等量", "大量")
_RESOLVED = {
    "consolidation": "实变影", "ground_glass_opacity": "磨玻璃影", "pleural_effusion": "胸腔积液",
    "nodule": "结节", "emphysema": "肺气肿",
}


def _lobes(f: Finding) -> str:
    return "、".join(LOBES_ZH[c] for c in f.lobes) or LOBES_ZH[0]


def _change(f: Finding, ctx: ReportContext) -> str:
    if not ctx.has_prior or f.change is None:
        return ""
    if f.change == "new":
        return "，为新发病灶"
    if f.kind == "nodule" and f.change == "increased":
        return f"，较前增大（前片约{f.prior_size_mm:.0f}mm）"
    return {
        "stable": "，较前变化不明显", "increased": "，较前增多", "decreased": "，较前吸收减少",
    }[f.change]


def _finding(f: Finding, pattern: str, ctx: ReportContext) -> tuple[str, str]:
    """(检查所见 sentence, 诊断意见 item) for one finding; the item may be ""."""
    lobe, d = _lobes(f), f.size_mm
    ch = _change(f, ctx)
    if f.kind == "nodule":
        text = f"{lobe}见一实性结节，大小约{d:.0f}mm，边界清楚{ch}。"
        if f.change == "increased":
            rec = "较前增大，建议进一步检查（PET-CT或穿刺活检）"
        elif f.change == "stable":
            rec = "较前无明显变化，建议定期随访"
        else:
            rec = "建议3个月后复查胸部CT或进一步检查"
        return text, f"{lobe}实性结节（约{d:.0f}mm），{rec}。"
    if f.kind == "consolidation":
        text = f"{lobe}见大片状实变影，范围约{d / 10.0:.1f}cm，其内可见支气管充气征{ch}。"
        tail = "，较前吸收好转" if f.change == "decreased" else ""
        return text, f"{lobe}实变{tail}，考虑肺炎，请结合临床。"
    if f.kind == "ground_glass_opacity":
        if pattern == "perilesional":
            return f"病灶周围见磨玻璃密度影{ch}。", ""
        if pattern == "edema":
            return (f"{lobe}见磨玻璃密度影，小叶间隔增厚{ch}。",
                    "双肺磨玻璃影伴胸腔积液，考虑间质性肺水肿。")
        lung = {"right": "右肺", "left": "左肺", "bilateral": "双肺"}[f.sides]
        return (f"{lobe}见多发斑片状磨玻璃密度影，以胸膜下分布为主{ch}。",
                f"{lung}多发磨玻璃影，考虑病毒性或非典型病原体感染可能，请结合临床。")
    if f.kind == "emphysema":
        grade = _GRADE[emphysema_grade(f)]
        return (f"双肺见多发无壁低密度区，以上叶为著，提示{grade}小叶中心型肺气肿{ch}。",
                f"{grade}小叶中心型肺气肿。")
    size, side = _SIZE[effusion_grade(f)], _SIDE[f.sides]
    extra = "，邻近肺组织受压膨胀不全" if effusion_grade(f) else ""
    return f"{side}{size}胸腔积液{extra}{ch}。", f"{side}胸腔积液（{size}）。"


def body_zh(findings: list[Finding], resolved: list[str], ctx: ReportContext) -> str:
    """Chinese body; ``findings`` are already in reporting order."""
    pattern = ggo_pattern(findings)
    lungs: list[str] = []
    pleura: list[str] = []
    impression: list[str] = []
    for f in findings:
        text, item = _finding(f, pattern, ctx)
        (pleura if f.kind == "pleural_effusion" else lungs).append(text)
        if item:
            impression.append(item)
    for kind in resolved:
        impression.append(f"前片所示{_RESOLVED[kind]}已基本吸收。")
    if not lungs:
        lungs = ["双肺纹理清晰，未见明确实变及结节影。"]
    if not pleura:
        pleura = ["双侧胸腔未见积液。"]
    heart = "心影增大。" if ctx.cardiomegaly else "心影大小正常。"
    if ctx.cardiomegaly:
        impression.append("心影增大。")
    if not impression:
        impression = ["胸部CT平扫未见明显异常。"]
    if is_urgent(findings):
        impression.append("已电话通知临床医师。")
    compare = "与前片比较：" if ctx.has_prior else ""
    seen = (f"{compare}{''.join(lungs)}气管及主支气管通畅。纵隔内未见明显肿大淋巴结。"
            f"{heart}{''.join(pleura)}扫描范围内骨质未见明显异常。")
    items = "\n".join(f"{i}. {s}" for i, s in enumerate(impression, 1))
    return f"检查所见：\n{seen}\n\n诊断意见：\n{items}\n"
